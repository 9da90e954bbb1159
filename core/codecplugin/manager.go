// Package codecplugin runs timgw's codec plugins: the protocols configured under
// `codecs:`, each served by a subprocess speaking the plugins/codec SDK's gRPC stream.
// It starts them, gives the transport one codec.Protocol per plugin (recognised with the
// plugin's declared recogniser, evaluated in the gateway), forwards every connection's
// bytes and packets over the plugin's single batched stream, keeps each plugin running
// with a pluginhost.Supervisor under the codecs.restart policy (a crash closes that
// plugin's connections with a logged reason, other protocols untouched; repeated crashes
// mark it failed), applies config
// reloads (add, remove, replace), and reports a status per plugin.
package codecplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/pluginhost"
)

// Options configure a Manager.
type Options struct {
	// Logger receives lifecycle events and the plugins' own log lines.
	Logger *slog.Logger
	// MaxFrame is limits.max_frame_bytes, told to plugins at their handshake.
	MaxFrame int
	// Executable is the binary that runs built-in plugins (default: this process's).
	Executable string
	// SetProtocols is called with the plugins' protocols whenever the set changes
	// (transport.Server.SetProtocols).
	SetProtocols func([]codec.Protocol)
	// Registerer, when set, gets timgw_codec_plugin_packets_total{plugin,direction}.
	Registerer prometheus.Registerer
	// PluginMetrics, when set, count the plugins' restarts and hangs (timgw_plugin_*).
	PluginMetrics *pluginhost.Metrics
}

// Manager runs the configured codec plugins.
type Manager struct {
	log           *slog.Logger
	maxFrame      int
	executable    string
	setProtos     func([]codec.Protocol)
	socketRoot    string
	rmSocket      func() error // removes socketRoot if it was made here (pluginhost.SocketDir)
	policy        atomic.Pointer[config.CodecRestart]
	packets       *prometheus.CounterVec // nil: no metrics
	pluginMetrics *pluginhost.Metrics
	planMu        sync.Mutex // held from Prepare to Commit or Rollback, and by Restart

	mu      sync.Mutex
	plugins []*plugin
	stopped bool
}

// restartPolicy is codecs.restart as the plugins' supervisors read it: the same fields
// as pluginhost.Policy.
func (m *Manager) restartPolicy() pluginhost.Policy { return pluginhost.Policy(*m.policy.Load()) }

// Start starts every configured plugin and returns when all run. A plugin that does not
// start fails Start (the others are stopped): a gateway does not boot with a broken
// protocol configuration.
func Start(cfg config.Codecs, o Options) (*Manager, error) {
	if err := Check(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m := &Manager{log: o.Logger, maxFrame: o.MaxFrame, executable: o.Executable, setProtos: o.SetProtocols,
		pluginMetrics: o.PluginMetrics}
	if m.log == nil {
		m.log = slog.Default()
	}
	if o.Registerer != nil {
		m.packets = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timgw_codec_plugin_packets_total",
			Help: "Packets through codec plugins: in, decoded from clients; out, handed to the plugin to encode."},
			[]string{"plugin", "direction"})
		if err := o.Registerer.Register(m.packets); err != nil {
			return nil, fmt.Errorf("codec plugin metrics: %w", err)
		}
	}
	if m.setProtos == nil {
		m.setProtos = func([]codec.Protocol) {}
	}
	m.policy.Store(&cfg.Restart)
	if len(cfg.Plugins) == 0 {
		return m, nil
	}
	if err := m.prepareDirs(cfg.SocketDir); err != nil {
		return nil, err
	}
	for _, pc := range cfg.Plugins {
		p := newPlugin(m, pc)
		g, err := p.host.Launch()
		if err != nil {
			_ = m.Stop(context.Background())
			return nil, err
		}
		m.plugins = append(m.plugins, p)
		p.host.Go(g)
	}
	m.publish()
	return m, nil
}

// prepareDirs finds the executable of built-in plugins and makes the socket directory,
// once.
func (m *Manager) prepareDirs(socketDir string) error {
	if m.executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("codec plugins: find own executable: %w", err)
		}
		m.executable = exe
	}
	if m.socketRoot == "" {
		return m.makeSocketRoot(socketDir)
	}
	return nil
}

// socketRootPrefix names the private socket directories (pluginhost.SocketDir).
const socketRootPrefix = "timgw-codecs-"

func (m *Manager) makeSocketRoot(dir string) error {
	root, rm, err := pluginhost.SocketDir(dir, socketRootPrefix, m.log)
	if err != nil {
		return fmt.Errorf("codec plugins: %w", err)
	}
	m.socketRoot, m.rmSocket = root, rm
	return nil
}

func checkBuiltins(cfg config.Codecs) error {
	for _, pc := range cfg.Plugins {
		if pc.Builtin != "" && !pluginhost.Registered(pluginhost.Codec, pc.Builtin) {
			return fmt.Errorf("codecs: plugin %s: builtin %q is not compiled into this binary (built in: %v)", pc.Name, pc.Builtin, pluginhost.Names(pluginhost.Codec))
		}
	}
	return nil
}

// publish hands the current protocols to the transport. Called with m.mu held or
// before the manager is shared.
func (m *Manager) publish() {
	ps := make([]codec.Protocol, 0, len(m.plugins))
	for _, p := range m.plugins {
		ps = append(ps, p.proto)
	}
	m.setProtos(ps)
}

// Protocols returns one protocol per plugin, in configuration order. Plugins that are
// not on the shared port are included (their own ports look them up by name) but never
// match when sniffing.
func (m *Manager) Protocols() []codec.Protocol {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := make([]codec.Protocol, 0, len(m.plugins))
	for _, p := range m.plugins {
		ps = append(ps, p.proto)
	}
	return ps
}

// Listeners returns the dedicated ports of every plugin: protocol name → addresses.
func (m *Manager) Listeners() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]string)
	for _, p := range m.plugins {
		if len(p.cfg.Listen) > 0 {
			out[p.cfg.Name] = append([]string(nil), p.cfg.Listen...)
		}
	}
	return out
}

// Plan is a prepared reconfiguration (a configuration reload): Prepare has started the
// new and changed plugins without showing them to the transport; Commit swaps them in and
// stops the plugins they replace; Rollback stops what Prepare started. Exactly one of
// Commit and Rollback must follow Prepare.
type Plan struct {
	m       *Manager
	cfg     config.Codecs
	next    []*plugin
	started []startedPlugin
	retire  []retired
	changes []string
	done    bool
}

type startedPlugin struct {
	p *plugin
	g pluginhost.Process // launched, not yet supervised
}

type retired struct {
	p      *plugin
	reason string
}

// Prepare plans the move to cfg: plugins no longer named will be stopped, new ones are
// started now, and ones whose configuration or executable changed, or that had failed,
// are started now to replace the old ones (whose connections Commit closes: their state
// lived in the old process). Unchanged plugins keep running with their connections. If a
// plugin does not start, Prepare stops what it started and fails: nothing changes.
// Dedicated ports (listen) are the caller's to open and close.
func (m *Manager) Prepare(cfg config.Codecs) (*Plan, error) {
	if err := Check(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m.planMu.Lock()
	plan := &Plan{m: m, cfg: cfg}
	fail := func(err error) (*Plan, error) {
		plan.stopStarted()
		m.planMu.Unlock()
		return nil, err
	}
	m.mu.Lock()
	stopped, current := m.stopped, append([]*plugin(nil), m.plugins...)
	m.mu.Unlock()
	if stopped {
		return fail(errors.New("codec plugins: stopped"))
	}
	if len(cfg.Plugins) > 0 {
		if err := m.prepareDirs(cfg.SocketDir); err != nil {
			return fail(err)
		}
	}
	old := make(map[string]*plugin, len(current))
	for _, p := range current {
		old[p.cfg.Name] = p
	}
	for _, pc := range cfg.Plugins {
		p, ok := old[pc.Name]
		delete(old, pc.Name)
		if ok && reflect.DeepEqual(p.cfg, pc) && !p.binaryChanged() && p.state() != StateFailed {
			plan.next = append(plan.next, p)
			continue
		}
		np := newPlugin(m, pc)
		g, err := np.host.Launch()
		if err != nil {
			return fail(err)
		}
		plan.started = append(plan.started, startedPlugin{np, g})
		plan.next = append(plan.next, np)
		if ok {
			plan.retire = append(plan.retire, retired{p, fmt.Sprintf("codec plugin %s replaced by a configuration reload", pc.Name)})
			plan.changes = append(plan.changes, "~"+pc.Name)
		} else {
			plan.changes = append(plan.changes, "+"+pc.Name)
		}
	}
	for name, p := range old {
		plan.retire = append(plan.retire, retired{p, fmt.Sprintf("codec plugin %s removed by a configuration reload", name)})
		plan.changes = append(plan.changes, "-"+name)
	}
	sort.Strings(plan.changes)
	return plan, nil
}

func (pl *Plan) stopStarted() {
	for _, s := range pl.started {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.p.gen.Store(nil)
		s.g.Stop(ctx)
		cancel()
		s.p.host.SetState(StateStopped)
	}
}

// Changes lists what Commit changes: "+name" started, "-name" stopped, "~name" replaced.
func (pl *Plan) Changes() []string { return pl.changes }

// Commit shows the new plugins to the transport and stops the ones they replace or that
// are no longer configured, closing their connections.
func (pl *Plan) Commit() []string {
	if pl.done {
		return nil
	}
	pl.done = true
	m := pl.m
	defer m.planMu.Unlock()
	m.policy.Store(&pl.cfg.Restart)
	m.mu.Lock()
	m.plugins = pl.next
	m.publish()
	m.mu.Unlock()
	for _, s := range pl.started {
		s.p.host.Go(s.g)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range pl.retire {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.p.stop(ctx, r.reason)
		}()
	}
	wg.Wait()
	return pl.changes
}

// Rollback stops what Prepare started; the running plugins are untouched.
func (pl *Plan) Rollback() {
	if pl.done {
		return
	}
	pl.done = true
	pl.stopStarted()
	pl.m.planMu.Unlock()
}

// Apply is Prepare then Commit: it returns what changed, or why nothing did.
func (m *Manager) Apply(cfg config.Codecs) ([]string, error) {
	plan, err := m.Prepare(cfg)
	if err != nil {
		return nil, err
	}
	return plan.Commit(), nil
}

// Check validates a codecs configuration as Start and Apply would, without starting
// anything (a reload's prepare step).
func Check(cfg config.Codecs) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return checkBuiltins(cfg)
}

// Has reports whether a plugin is configured under name.
func (m *Manager) Has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.plugins {
		if p.cfg.Name == name {
			return true
		}
	}
	return false
}

// Restart stops plugin name (closing its connections) and starts it afresh, with its
// crash count reset: the way out of StateFailed without a configuration change.
func (m *Manager) Restart(name string) error {
	m.planMu.Lock()
	defer m.planMu.Unlock()
	m.mu.Lock()
	var old *plugin
	idx := -1
	for i, p := range m.plugins {
		if p.cfg.Name == name {
			old, idx = p, i
		}
	}
	m.mu.Unlock()
	if old == nil {
		return fmt.Errorf("codec plugin %q is not configured", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	old.stop(ctx, fmt.Sprintf("codec plugin %s restarted by an administrator", name))
	cancel()
	np := newPlugin(m, old.cfg)
	m.mu.Lock()
	if idx < len(m.plugins) && m.plugins[idx] == old {
		m.plugins[idx] = np
		m.publish()
	}
	m.mu.Unlock()
	g, err := np.host.Launch()
	if err != nil {
		np.host.RecordCrash(err)
	}
	np.host.Go(g)
	return err
}

// Quiesce tells every plugin's supervisor that the gateway is shutting down: a plugin
// that ends from now on (say, from a signal sent to every process of the service) is not
// restarted. Stop stops them.
func (m *Manager) Quiesce() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.plugins {
		p.host.Quiesce()
	}
}

// Stop stops every plugin (their connections should be closed already) and removes
// the socket directory. It waits up to ctx.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	plugins := m.plugins
	m.plugins = nil
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(ctx, fmt.Sprintf("codec plugin %s stopped: gateway shutting down", p.cfg.Name))
		}()
	}
	wg.Wait()
	var err error
	if m.rmSocket != nil {
		err = m.rmSocket()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop codec plugins: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("stop codec plugins: remove socket dir: %w", err)
	}
	return nil
}

// Status describes one plugin, for the admin API.
type Status struct {
	Name          string    `json:"name"`
	Command       string    `json:"command"` // "builtin:<name>" or the executable's path
	State         State     `json:"state"`
	Since         time.Time `json:"since"` // when it entered State
	PID           int       `json:"pid,omitempty"`
	Version       string    `json:"version,omitempty"` // the plugin's own version
	WireVersion   int       `json:"wireVersion,omitempty"`
	SharedPort    bool      `json:"sharedPort"`
	Listen        []string  `json:"listen,omitempty"`
	Connections   int       `json:"connections"`
	Restarts      int       `json:"restarts"`
	RecentCrashes int       `json:"recentCrashes"` // within the restart window
	LastError     string    `json:"lastError,omitempty"`
	LastCrash     time.Time `json:"lastCrash,omitzero"`
}

// Status reports every plugin, sorted by name.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	plugins := append([]*plugin(nil), m.plugins...)
	m.mu.Unlock()
	out := make([]Status, 0, len(plugins))
	for _, p := range plugins {
		s := Status{Name: p.cfg.Name, Command: p.describe(), SharedPort: p.cfg.OnSharedPort(), Listen: p.cfg.Listen}
		if g := p.gen.Load(); g != nil {
			s.Connections = g.count()
		}
		h := p.host.Stats()
		s.State, s.Since, s.Restarts, s.RecentCrashes, s.LastError, s.LastCrash =
			h.State, h.Since, h.Restarts, h.RecentCrashes, h.LastError, h.LastCrash
		p.mu.Lock()
		s.Version, s.WireVersion = p.info.Version, p.wire
		if h.State == StateRunning {
			s.PID = p.pid
		}
		p.mu.Unlock()
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
