// Package metrics exports the gateway's Prometheus metrics. The core's hot paths keep
// plain atomic counters; this package reads them at scrape time (Sources), so that a
// packet costs an atomic add, not a label lookup. Components with their own histograms
// (Lua hooks, storage, codec plugins) register them on Registry.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are the counters the core keeps, read at scrape time. Each func is called from
// the scraping goroutine and must be safe for concurrent use.
type Sources struct {
	// Connections returns open connections by protocol.
	Connections func() map[string]int
	// OnlineUsers returns the number of users with a connection.
	OnlineUsers func() int
	// Packets returns packets received from and sent to clients.
	Packets func() (in, out uint64)
	// Bytes returns bytes received from and sent to clients.
	Bytes func() (in, out uint64)
}

// Metrics is the gateway's metric registry.
type Metrics struct {
	// Registry holds every metric; register components' collectors here.
	Registry *prometheus.Registry
	// Chats counts chats by result code (10000 accepted, 10001 offline, errors).
	Chats *prometheus.CounterVec
	// ChatLatency observes the time from a chat's arrival to its ack.
	ChatLatency prometheus.Histogram
	// Reloads counts configuration reloads by result (ok, skipped, error).
	Reloads *prometheus.CounterVec

	byCode [64]atomic.Pointer[prometheus.Counter]
}

// New returns a registry with the Go runtime and process collectors and the core's
// metrics, reading src at scrape time.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		Chats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timgw_chats_total", Help: "Chats handled, by result code (10000 accepted, 10001 receiver offline, others refused).",
		}, []string{"code"}),
		ChatLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "timgw_chat_seconds", Help: "Time from a chat's arrival to its ack (hooks, routing, storage).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timgw_config_reloads_total", Help: "Configuration reload attempts, by result.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.Chats, m.ChatLatency, m.Reloads, &sourceCollector{src: src})
	return m
}

// ObserveChat records a chat's result and how long it took. Called for every chat:
// the counters of the status codes are looked up once, not per call.
func (m *Metrics) ObserveChat(code int, d time.Duration) {
	if i := code - firstCode; i >= 0 && i < len(m.byCode) {
		c := m.byCode[i].Load()
		if c == nil { // first chat with this code: look the series up once
			v := m.Chats.WithLabelValues(codeLabel(code))
			c = &v
			m.byCode[i].Store(c)
		}
		(*c).Inc()
	} else {
		m.Chats.WithLabelValues(codeLabel(code)).Inc()
	}
	m.ChatLatency.Observe(d.Seconds())
}

// firstCode is the first status code (10000); byCode covers 10000..10063.
const firstCode = 10000

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

func codeLabel(code int) string { return strconv.Itoa(code) }

var (
	descConns   = prometheus.NewDesc("timgw_connections", "Open client connections, by protocol.", []string{"protocol"}, nil)
	descOnline  = prometheus.NewDesc("timgw_online_users", "Users with at least one connection.", nil, nil)
	descPackets = prometheus.NewDesc("timgw_packets_total", "Packets received from (in) and sent to (out) clients.", []string{"direction"}, nil)
	descBytes   = prometheus.NewDesc("timgw_bytes_total", "Bytes received from (in) and sent to (out) clients.", []string{"direction"}, nil)
)

type sourceCollector struct{ src Sources }

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConns
	ch <- descOnline
	ch <- descPackets
	ch <- descBytes
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.src.Connections; f != nil {
		for proto, n := range f() {
			ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(n), proto)
		}
	}
	if f := c.src.OnlineUsers; f != nil {
		ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(f()))
	}
	if f := c.src.Packets; f != nil {
		in, out := f()
		ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(in), "in")
		ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(out), "out")
	}
	if f := c.src.Bytes; f != nil {
		in, out := f()
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(in), "in")
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(out), "out")
	}
}
