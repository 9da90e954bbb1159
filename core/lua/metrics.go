package lua

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series of a Runtime; a nil *metrics records nothing.
type metrics struct {
	latency   [numPoints]prometheus.Observer
	decisions [numPoints][]prometheus.Counter
	failures  *prometheus.CounterVec
	calls     *prometheus.CounterVec
	callsOf   sync.Map // scriptKey → prometheus.Counter: no label lookup per call
	reloads   prometheus.Counter
	skips     prometheus.Counter // messages every guard let through (tim.guard)
	loadErrs  *prometheus.CounterVec
}

// decisionNames are the decisions counted per hook point; calls record an index. For
// auth and message the index is the hook.AuthDecision / hook.MessageAction.
var decisionNames = [numPoints][]string{
	pConnect:    {"allow", "deny"},
	pAuth:       {"pass", "accept", "reject"},
	pMessage:    {"pass", "rewrite", "reroute", "reject", "drop"},
	pJoin:       {"allow", "deny"},
	pDisconnect: {"done"},

	pAuthenticated: {"pass", "accept", "reject"},
	pEvent:         {"pass", "drop"},
}

// newMetrics registers the series on reg (nil: none).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "timgw_hook_duration_seconds",
		Help:    "Time of one hook call, all its scripts included, by hook point (calls with no script hooked are not observed).",
		Buckets: []float64{1e-6, 2e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 2.5e-2, 0.1},
	}, []string{"hook"})
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "timgw_hook_decisions_total",
		Help: "Hook call outcomes by hook point and decision.",
	}, []string{"hook", "decision"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "timgw_hook_failures_total",
		Help: "Script failures by hook point, script and kind (error, timeout); script \"-\" is the hook point itself (no Lua state free).",
	}, []string{"hook", "script", "kind"})
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "timgw_hook_calls_total",
		Help: "Script calls by hook point and script (each script of a chain counts once per call it runs in); its failures are timgw_hook_failures_total.",
	}, []string{"hook", "script"})
	skips := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "timgw_hook_guard_skips_total",
		Help: "Messages that fired no guard of any message script (tim.guard), so no script ran.",
	})
	reloads := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "timgw_hook_reloads_total",
		Help: "Script sets published (start, configuration reloads and file changes).",
	})
	loadErrs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "timgw_hook_load_errors_total",
		Help: "Script versions rejected at load (compile or load error), by script.",
	}, []string{"script"})
	for _, c := range []prometheus.Collector{latency, decisions, failures, calls, skips, reloads, loadErrs} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register hook metrics: %w", err)
		}
	}
	m := &metrics{failures: failures, calls: calls, skips: skips, reloads: reloads, loadErrs: loadErrs}
	for p := point(0); p < numPoints; p++ {
		m.latency[p] = latency.WithLabelValues(p.String())
		for _, d := range decisionNames[p] {
			m.decisions[p] = append(m.decisions[p], decisions.WithLabelValues(p.String(), d))
		}
	}
	return m, nil
}

func (m *metrics) enabled() bool { return m != nil }

func (m *metrics) observe(p point, seconds float64, decision int) {
	if m == nil {
		return
	}
	m.latency[p].Observe(seconds)
	if decision >= 0 && decision < len(m.decisions[p]) {
		m.decisions[p][decision].Inc()
	}
}

// scriptKey names a script at a hook point.
type scriptKey struct {
	p      point
	script string
}

// called counts one run of script at p.
func (m *metrics) called(p point, script string) {
	if m == nil {
		return
	}
	k := scriptKey{p, script}
	c, ok := m.callsOf.Load(k)
	if !ok {
		c, _ = m.callsOf.LoadOrStore(k, m.calls.WithLabelValues(p.String(), script))
	}
	c.(prometheus.Counter).Inc()
}

func (m *metrics) failure(p point, script, kind string) {
	if m == nil || p >= numPoints {
		if m != nil {
			m.failures.WithLabelValues("load", script, kind).Inc()
		}
		return
	}
	m.failures.WithLabelValues(p.String(), script, kind).Inc()
}

func (m *metrics) guardSkip() {
	if m != nil {
		m.skips.Inc()
	}
}

func (m *metrics) reloaded() {
	if m != nil {
		m.reloads.Inc()
	}
}

func (m *metrics) reloadFailed(script string) {
	if m != nil {
		m.loadErrs.WithLabelValues(script).Inc()
	}
}
