package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the storage host's Prometheus metrics. A nil *metrics counts nothing.
type metrics struct {
	appendSeconds prometheus.Histogram
	batchSeconds  prometheus.Histogram
	batchSize     prometheus.Histogram
	errs          *prometheus.CounterVec
	readFanout    prometheus.Counter
}

// Operations of timgw_storage_errors_total.
const (
	opAppend  = "append"
	opInbox   = "inbox"
	opConfirm = "confirm"
	opHistory = "history"
	opRecall  = "recall"
	opJoin    = "join"
	opLeave   = "leave"
	opPutUser = "put_user"
	// receipts.go
	opCursor        = "cursor"
	opConversations = "conversations"
)

// newMetrics registers the storage metrics on reg (nil: none are kept).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "timgw_storage_append_seconds",
			Help:    "Time to store one chat (queueing, batching and the plugin's durable write), of chats stored.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "timgw_storage_batch_seconds",
			Help:    "Round trip of a batch of chats on the plugin's write stream, from its send to its result (the plugin's durable write included); timgw_storage_append_seconds minus this is the time chats wait to be sent.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "timgw_storage_batch_size",
			Help:    "Chats per batch sent to the storage plugin.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timgw_storage_errors_total",
			Help: "Storage operations that failed (plugin down, hung, timed out or failing), by operation."}, []string{"op"}),
		readFanout: prometheus.NewCounter(prometheus.CounterOpts{Name: "timgw_storage_read_fanout_total",
			Help: "Group chats stored by read fan-out (once, without inbox entries: members pull them), resends not counted."}),
	}
	for _, c := range []prometheus.Collector{m.appendSeconds, m.batchSeconds, m.batchSize, m.errs, m.readFanout} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("storage metrics: %w", err)
		}
	}
	for _, op := range []string{opAppend, opInbox, opConfirm, opHistory, opRecall, opJoin, opLeave, opPutUser, opCursor, opConversations} {
		m.errs.WithLabelValues(op) // the series exist from the start, at 0
	}
	return m, nil
}

func (m *metrics) appended(d time.Duration) {
	if m != nil {
		m.appendSeconds.Observe(d.Seconds())
	}
}

func (m *metrics) batchDone(d time.Duration) {
	if m != nil {
		m.batchSeconds.Observe(d.Seconds())
	}
}

func (m *metrics) readFannedOut() {
	if m != nil {
		m.readFanout.Inc()
	}
}

func (m *metrics) batch(n int) {
	if m != nil {
		m.batchSize.Observe(float64(n))
	}
}

// failed counts a failed operation; answers with a meaning (not found, too late to
// recall, invalid) are not failures of storage.
func (m *metrics) failed(op string, err error) {
	if m == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrRecallWindow) {
		return
	}
	m.errs.WithLabelValues(op).Inc()
}
