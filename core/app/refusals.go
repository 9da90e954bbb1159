package app

import "github.com/prometheus/client_golang/prometheus"

// refusalsCollector exports the transport's refused connections as
// timgw_connections_refused_total{reason}.
type refusalsCollector struct {
	desc   *prometheus.Desc
	counts func() map[string]uint64
}

var _ prometheus.Collector = refusalsCollector{}

func newRefusalsCollector(counts func() map[string]uint64) refusalsCollector {
	return refusalsCollector{
		desc: prometheus.NewDesc("timgw_connections_refused_total",
			"Connections closed as soon as they were accepted, by the limit that refused them (max_connections, max_connections_per_ip, connection_rate_per_ip).",
			[]string{"reason"}, nil),
		counts: counts,
	}
}

// Describe implements prometheus.Collector.
func (c refusalsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c refusalsCollector) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range c.counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
	}
}
