package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery results, the label of timgw_webhook_deliveries_total.
const (
	resultDelivered = "delivered" // a 2xx answer
	resultRetry     = "retry"     // an attempt failed, another follows
	resultFailed    = "failed"    // the last attempt failed: given up
	resultDropped   = "dropped"   // never attempted: the channel or the queue was full
)

// metrics are the Prometheus series of a Dispatcher; a nil *metrics records nothing.
type metrics struct {
	events     map[string]prometheus.Counter // by type, looked up once
	results    map[string]prometheus.Counter
	suppressed map[string]prometheus.Counter // by type: the event hook dropped them
}

func newMetrics(reg prometheus.Registerer, d *Dispatcher) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "timgw_webhook_events_total", Help: "Webhook events emitted, by type.",
	}, []string{"type"})
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "timgw_webhook_deliveries_total",
		Help: "Webhook deliveries by result: delivered, retry (an attempt failed), failed (given up), dropped (queue full).",
	}, []string{"result"})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "timgw_webhook_pending", Help: "Webhook events waiting for delivery.",
	}, func() float64 { return float64(d.pending()) })
	suppressed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "timgw_webhook_events_suppressed_total", Help: "Webhook events a Lua event hook dropped before they were queued, by type.",
	}, []string{"type"})
	for _, c := range []prometheus.Collector{events, deliveries, pending, suppressed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhook metrics: %w", err)
		}
	}
	m := &metrics{events: map[string]prometheus.Counter{}, results: map[string]prometheus.Counter{}, suppressed: map[string]prometheus.Counter{}}
	for _, t := range Types {
		m.events[t] = events.WithLabelValues(t)
		m.suppressed[t] = suppressed.WithLabelValues(t)
	}
	for _, r := range []string{resultDelivered, resultRetry, resultFailed, resultDropped} {
		m.results[r] = deliveries.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) event(typ string) {
	if c := m.counter(typ); c != nil {
		c.Inc()
	}
}

func (m *metrics) suppress(typ string) {
	if m == nil {
		return
	}
	if c := m.suppressed[typ]; c != nil {
		c.Inc()
	}
}

func (m *metrics) result(r string) {
	if m != nil {
		m.results[r].Inc()
	}
}

// counter is the events counter of typ (nil: no metrics, or not a known type).
func (m *metrics) counter(typ string) prometheus.Counter {
	if m == nil {
		return nil
	}
	return m.events[typ]
}
