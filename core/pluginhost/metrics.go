package pluginhost

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the plugin supervisors' Prometheus metrics, one set per gateway shared by
// every Supervisor (storage and codec alike; Config.Metrics):
//
//   - timgw_plugin_restarts_total{kind,name}: processes started after a crash or a hang
//   - timgw_plugin_hangs_total{kind,name}: processes killed for not answering pings
//   - timgw_plugin_state{kind,name}: 1 running, 0 starting or restarting, -1 failed
//
// A plugin's state series goes away when it is stopped (removed by a reload, shutdown);
// while a reload replaces a plugin, the newest supervisor of a name is the one shown.
type Metrics struct {
	restarts *prometheus.CounterVec
	hangs    *prometheus.CounterVec
	stateDsc *prometheus.Desc

	mu   sync.Mutex
	live map[[2]string][]*Supervisor // kind, name → supervisors not stopped, oldest first
}

var _ prometheus.Collector = (*Metrics)(nil)

// NewMetrics returns the metrics; register them on the gateway's registry.
func NewMetrics() *Metrics {
	return &Metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timgw_plugin_restarts_total",
			Help: "Plugin processes started again after a crash or a hang."}, []string{"kind", "name"}),
		hangs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timgw_plugin_hangs_total",
			Help: "Plugin processes killed because they stopped answering pings."}, []string{"kind", "name"}),
		stateDsc: prometheus.NewDesc("timgw_plugin_state", "Plugin state: 1 running, 0 starting or restarting, -1 failed.",
			[]string{"kind", "name"}, nil),
		live: map[[2]string][]*Supervisor{},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.restarts.Describe(ch)
	m.hangs.Describe(ch)
	ch <- m.stateDsc
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.restarts.Collect(ch)
	m.hangs.Collect(ch)
	m.mu.Lock()
	cur := make(map[[2]string]*Supervisor, len(m.live))
	for k, ss := range m.live {
		cur[k] = ss[len(ss)-1]
	}
	m.mu.Unlock()
	for k, s := range cur {
		ch <- prometheus.MustNewConstMetric(m.stateDsc, prometheus.GaugeValue, stateValue(s.State()), k[0], k[1])
	}
}

// stateValue is a state as timgw_plugin_state shows it.
func stateValue(st State) float64 {
	switch st {
	case Running:
		return 1
	case Failed:
		return -1
	}
	return 0
}

func (m *Metrics) add(s *Supervisor) {
	if m == nil || s.cfg.Name == "" {
		return
	}
	k := [2]string{s.cfg.Kind, s.cfg.Name}
	m.mu.Lock()
	m.live[k] = append(m.live[k], s)
	m.mu.Unlock()
	// The series exist from the start, at 0.
	m.restarts.WithLabelValues(k[0], k[1])
	m.hangs.WithLabelValues(k[0], k[1])
}

func (m *Metrics) remove(s *Supervisor) {
	if m == nil || s.cfg.Name == "" {
		return
	}
	k := [2]string{s.cfg.Kind, s.cfg.Name}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live[k] = slices.DeleteFunc(m.live[k], func(x *Supervisor) bool { return x == s })
	if len(m.live[k]) == 0 {
		delete(m.live, k)
	}
}

func (m *Metrics) restarted(s *Supervisor) {
	if m != nil && s.cfg.Name != "" {
		m.restarts.WithLabelValues(s.cfg.Kind, s.cfg.Name).Inc()
	}
}

func (m *Metrics) hung(s *Supervisor) {
	if m != nil && s.cfg.Name != "" {
		m.hangs.WithLabelValues(s.cfg.Kind, s.cfg.Name).Inc()
	}
}
