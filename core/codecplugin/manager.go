// Package codecplugin runs timgw's codec plugins: the protocols configured under
// `codecs:`, each served by a subprocess speaking the plugins/codec SDK's gRPC stream.
// It starts them, gives the transport one codec.Protocol per plugin (recognised with the
// plugin's declared recogniser, evaluated in the gateway), forwards every connection's
// bytes and packets over the plugin's single batched stream, restarts crashed plugins
// with backoff (closing the crashed plugin's connections with a logged reason, other
// protocols untouched), marks a plugin failed after repeated crashes, applies config
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

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/config"
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
}

// Manager runs the configured codec plugins.
type Manager struct {
	log        *slog.Logger
	maxFrame   int
	executable string
	setProtos  func([]codec.Protocol)
	socketRoot string
	ownRoot    bool // socketRoot was created here and is removed at Stop
	policy     atomic.Pointer[config.CodecRestart]

	mu      sync.Mutex
	plugins []*plugin
	stopped bool
}

func (m *Manager) restart() config.CodecRestart { return *m.policy.Load() }

// Start starts every configured plugin and returns when all run. A plugin that does not
// start fails Start (the others are stopped): a gateway does not boot with a broken
// protocol configuration.
func Start(cfg config.Codecs, o Options) (*Manager, error) {
	if err := Check(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m := &Manager{log: o.Logger, maxFrame: o.MaxFrame, executable: o.Executable, setProtos: o.SetProtocols}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.setProtos == nil {
		m.setProtos = func([]codec.Protocol) {}
	}
	m.policy.Store(&cfg.Restart)
	if len(cfg.Plugins) == 0 {
		return m, nil
	}
	if m.executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("codec plugins: find own executable: %w", err)
		}
		m.executable = exe
	}
	if err := m.makeSocketRoot(cfg.SocketDir); err != nil {
		return nil, err
	}
	for _, pc := range cfg.Plugins {
		p := newPlugin(m, pc)
		g, err := p.launch()
		if err != nil {
			_ = m.Stop(context.Background())
			return nil, err
		}
		m.plugins = append(m.plugins, p)
		go p.supervise(g)
	}
	m.publish()
	return m, nil
}

func (m *Manager) makeSocketRoot(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "timgw-codecs-")
		if err != nil {
			return fmt.Errorf("codec plugins: socket dir: %w", err)
		}
		m.socketRoot, m.ownRoot = d, true
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("codecs.socket_dir: %w", err)
	}
	m.socketRoot = dir
	return nil
}

func checkBuiltins(cfg config.Codecs) error {
	for _, pc := range cfg.Plugins {
		if pc.Builtin != "" && !isBuiltin(pc.Builtin) {
			return fmt.Errorf("codecs: plugin %s: builtin %q is not compiled into this binary (builtins: %v)", pc.Name, pc.Builtin, Builtins())
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

// Apply reconfigures the plugins (configuration reload): plugins no longer named are
// stopped, new ones started, and ones whose configuration or executable changed, or
// that had failed, are replaced (their connections are closed: their state lived in the
// old process). Unchanged plugins keep running with their connections. Plugins that do
// not start are reported in the error and retried with backoff; the others are applied.
// Dedicated ports (listen) are the caller's to open and close.
//
// It returns what changed ("+name", "-name", "~name"), and the start failures.
func (m *Manager) Apply(cfg config.Codecs) (changes []string, err error) {
	if err := Check(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, errors.New("codec plugins: stopped")
	}
	if len(cfg.Plugins) > 0 && m.executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("codec plugins: find own executable: %w", err)
		}
		m.executable = exe
	}
	if m.socketRoot == "" && len(cfg.Plugins) > 0 {
		if err := m.makeSocketRoot(cfg.SocketDir); err != nil {
			return nil, err
		}
	}
	m.policy.Store(&cfg.Restart)
	old := make(map[string]*plugin, len(m.plugins))
	for _, p := range m.plugins {
		old[p.cfg.Name] = p
	}
	var next, started []*plugin
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pc := range cfg.Plugins {
		p, ok := old[pc.Name]
		delete(old, pc.Name)
		if ok && reflect.DeepEqual(p.cfg, pc) && !p.binaryChanged() && p.stateName() != StateFailed {
			next = append(next, p)
			continue
		}
		if ok {
			p.stop(ctx, fmt.Sprintf("codec plugin %s replaced by a configuration reload", pc.Name))
			changes = append(changes, "~"+pc.Name)
		} else {
			changes = append(changes, "+"+pc.Name)
		}
		np := newPlugin(m, pc)
		next = append(next, np)
		started = append(started, np)
	}
	for name, p := range old {
		p.stop(ctx, fmt.Sprintf("codec plugin %s removed by a configuration reload", name))
		changes = append(changes, "-"+name)
	}
	var errs []error
	for _, p := range started {
		g, err := p.launch()
		if err != nil {
			p.recordCrash(err)
			errs = append(errs, err)
		}
		go p.supervise(g)
	}
	m.plugins = next
	m.publish()
	sort.Strings(changes)
	return changes, errors.Join(errs...)
}

// Check validates a codecs configuration as Start and Apply would, without starting
// anything (a reload's prepare step).
func Check(cfg config.Codecs) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return checkBuiltins(cfg)
}

// Restart stops plugin name (closing its connections) and starts it afresh, with its
// crash count reset: the way out of StateFailed without a configuration change.
func (m *Manager) Restart(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, p := range m.plugins {
		if p.cfg.Name != name {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p.stop(ctx, fmt.Sprintf("codec plugin %s restarted by an administrator", name))
		cancel()
		np := newPlugin(m, p.cfg)
		m.plugins[i] = np
		m.publish()
		g, err := np.launch()
		if err != nil {
			np.recordCrash(err)
		}
		go np.supervise(g)
		return err
	}
	return fmt.Errorf("codec plugin %q is not configured", name)
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
	if m.ownRoot {
		err = os.RemoveAll(m.socketRoot)
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
	cut := time.Now().Add(-m.restart().Window)
	out := make([]Status, 0, len(plugins))
	for _, p := range plugins {
		s := Status{Name: p.cfg.Name, Command: p.describe(), SharedPort: p.cfg.OnSharedPort(), Listen: p.cfg.Listen}
		if g := p.gen.Load(); g != nil {
			s.Connections = g.count()
		}
		p.mu.Lock()
		s.State, s.Since, s.Version, s.WireVersion = p.state, p.since, p.info.Version, p.wire
		if p.state == StateRunning {
			s.PID = p.pid
		}
		s.Restarts, s.LastError, s.LastCrash = p.restarts, p.lastErr, p.lastCrash
		for _, t := range p.crashes {
			if t.After(cut) {
				s.RecentCrashes++
			}
		}
		p.mu.Unlock()
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
