// Package grafana holds timgw's Grafana dashboard, timgw.json (see README.md). Its test
// checks that every metric the dashboard queries is one the gateway exports.
package grafana
