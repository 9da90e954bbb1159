package codecplugin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/pluginhost"
	sdk "github.com/timgw/timgw/plugins/codec"
)

// State is where a plugin is in its life: the states of its pluginhost.Supervisor.
type State = pluginhost.State

// Plugin states.
const (
	StateStarting   = pluginhost.Starting   // the process is starting
	StateRunning    = pluginhost.Running    // serving connections
	StateRestarting = pluginhost.Restarting // crashed, waiting to be restarted
	StateFailed     = pluginhost.Failed     // crashed too often: not restarted
	StateStopped    = pluginhost.Stopped    // stopped (shutdown, removed or replaced)
)

// plugin is one configured codec plugin. Its pluginhost.Supervisor restarts it with
// the policy of codecs.restart; the plugin adds what a process's end means to its
// connections.
type plugin struct {
	m     *Manager
	cfg   config.CodecPlugin
	proto *protocol
	host  *pluginhost.Supervisor

	matcher atomic.Pointer[sdk.Matcher] // the last process's recogniser (kept across restarts)
	gen     atomic.Pointer[generation]  // the running process, or nil

	mu     sync.Mutex
	info   sdk.Info
	wire   int
	pid    int
	binary fileStamp // the executable as it was at the last start (path plugins)

	stopWhy string // why the plugin is being stopped (mu); the first reason given wins

	// timgw_codec_plugin_packets_total of this plugin (nil: no metrics): packets the
	// plugin decoded from clients, and packets handed to it to encode.
	packetsIn, packetsOut prometheus.Counter
}

func newPlugin(m *Manager, cfg config.CodecPlugin) *plugin {
	p := &plugin{m: m, cfg: cfg}
	p.proto = &protocol{pl: p}
	if m.packets != nil {
		p.packetsIn = m.packets.WithLabelValues(cfg.Name, "in")
		p.packetsOut = m.packets.WithLabelValues(cfg.Name, "out")
	}
	p.host = pluginhost.New(pluginhost.Config{
		What:    "codec plugin",
		Kind:    pluginhost.Codec,
		Name:    cfg.Name,
		Metrics: m.pluginMetrics,
		Log:     m.log.With("plugin", cfg.Name),
		Policy:  m.restartPolicy,
		Launch: func() (pluginhost.Process, error) {
			g, err := p.launch()
			if err != nil {
				return nil, err
			}
			return g, nil
		},
		Crashed: func(proc pluginhost.Process, err error) { p.crashed(proc.(*generation), err) },
		Retire:  func(proc pluginhost.Process) { p.retire(proc.(*generation)) },
		Failed:  func() { p.matcher.Store(nil) }, // its clients now get "unknown protocol" instead of a close
	})
	return p
}

func (p *plugin) state() State { return p.host.State() }

// fileStamp identifies an executable's version on disk.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), mod: fi.ModTime()}
}

// command builds the plugin's command, in a fresh private socket directory.
func (p *plugin) command() (*exec.Cmd, error) {
	dir := filepath.Join(p.m.socketRoot, p.cfg.Name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clean socket dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	cmd := exec.Command(p.cfg.Path, p.cfg.Args...)
	if p.cfg.Builtin != "" {
		cmd = pluginhost.Command(p.m.executable, pluginhost.Codec, p.cfg.Builtin, p.cfg.Args...)
	}
	cmd.Env = os.Environ()
	for k, v := range p.cfg.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PLUGIN_UNIX_SOCKET_DIR="+dir)
	pluginhost.Tie(cmd)
	return cmd, nil
}

func (p *plugin) describe() string {
	if p.cfg.Builtin != "" {
		return "builtin:" + p.cfg.Builtin
	}
	return p.cfg.Path
}

// launch starts a process and publishes it as the running generation (the
// supervisor's Launch: call p.host.Launch, which tracks the state).
func (p *plugin) launch() (*generation, error) {
	cmd, err := p.command()
	if err != nil {
		return nil, fmt.Errorf("codec plugin %s: %w", p.cfg.Name, err)
	}
	if p.cfg.Path != "" {
		st := stamp(p.cfg.Path)
		p.mu.Lock()
		p.binary = st
		p.mu.Unlock()
	}
	g := newGeneration(p)
	started := time.Now()
	client, err := sdk.Launch(sdk.LaunchConfig{
		Cmd: cmd,
		Hello: sdk.Hello{Name: p.cfg.Name, Options: p.cfg.Options, MaxFrame: p.m.maxFrame, HostVersion: "timgw",
			BatchLinger: p.cfg.BatchLinger},
		Handler:      g,
		Logger:       p.m.log.With("codec_plugin", p.cfg.Name),
		StartTimeout: p.cfg.StartTimeout,
		Batch:        sdk.BatchOptions{MaxBytes: p.cfg.BatchBytes, Linger: p.cfg.BatchLinger, MaxPending: p.cfg.MaxPendingBytes},
	})
	if err != nil {
		return nil, fmt.Errorf("codec plugin %s (%s): %w", p.cfg.Name, p.describe(), err)
	}
	info := client.Info()
	var m *sdk.Matcher
	if p.cfg.OnSharedPort() {
		if m, err = info.Recognizer.Compile(); err != nil {
			client.Stop(context.Background())
			return nil, fmt.Errorf("codec plugin %s: cannot serve the shared port: %w", p.cfg.Name, err)
		}
	}
	if len(info.Goodbye) > sdk.MaxGoodbye {
		client.Stop(context.Background())
		return nil, fmt.Errorf("codec plugin %s: goodbye of %d bytes, more than %d", p.cfg.Name, len(info.Goodbye), sdk.MaxGoodbye)
	}
	if info.Name != "" && info.Name != p.cfg.Name {
		p.m.log.Info("codec plugin calls its protocol differently; the configured name is used",
			"plugin", p.cfg.Name, "plugin_says", info.Name)
	}
	g.client, g.goodbye = client, info.Goodbye
	p.matcher.Store(m)
	p.gen.Store(g)
	p.mu.Lock()
	p.info, p.wire, p.pid = info, client.Version(), client.Pid()
	p.mu.Unlock()
	p.m.log.Info("codec plugin started", "plugin", p.cfg.Name, "command", p.describe(), "pid", client.Pid(),
		"version", info.Version, "wire", client.Version(), "shared_port", m != nil,
		"took", time.Since(started).Round(time.Millisecond))
	return g, nil
}

// crashed is told by the supervisor that g ended on its own: its connections are
// closed (their state lived in the process).
func (p *plugin) crashed(g *generation, err error) {
	p.gen.CompareAndSwap(g, nil)
	closed := g.fail(fmt.Sprintf("codec plugin %s crashed (%v); clients may reconnect once it is restarted", p.cfg.Name, err))
	p.m.log.Error("codec plugin crashed", "plugin", p.cfg.Name, "pid", g.client.Pid(), "err", err, "connections_closed", closed)
}

// retire is told by the supervisor that g is being stopped on purpose.
func (p *plugin) retire(g *generation) {
	p.gen.CompareAndSwap(g, nil)
	p.matcher.Store(nil)
	p.mu.Lock()
	why := p.stopWhy
	p.mu.Unlock()
	if why == "" { // ended on its own while the gateway shuts down (quiesced)
		why = fmt.Sprintf("codec plugin %s ended while the gateway shuts down", p.cfg.Name)
	}
	if n := g.fail(why); n > 0 {
		p.m.log.Info("codec plugin connections closed", "plugin", p.cfg.Name, "connections", n, "reason", why)
	}
}

// stop stops the supervised plugin, closing its connections with reason, and waits
// for it up to ctx.
func (p *plugin) stop(ctx context.Context, reason string) {
	p.mu.Lock()
	if p.stopWhy == "" {
		p.stopWhy = reason
	}
	p.mu.Unlock()
	p.host.Stop(ctx)
	p.m.log.Info("codec plugin stopped", "plugin", p.cfg.Name, "reason", reason)
}

// binaryChanged reports whether a path plugin's executable changed since its start.
func (p *plugin) binaryChanged() bool {
	if p.cfg.Path == "" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return stamp(p.cfg.Path) != p.binary
}

var _ pluginhost.Process = (*generation)(nil)

// Done implements pluginhost.Process: closed when the plugin's stream has ended.
func (g *generation) Done() <-chan struct{} { return g.client.Done() }

// Err implements pluginhost.Process.
func (g *generation) Err() error { return g.client.Err() }

var _ pluginhost.Pinger = (*generation)(nil)

// Ping implements pluginhost.Pinger.
func (g *generation) Ping(ctx context.Context) error { return pluginhost.Ping(ctx, g.client.Plugin()) }

// Pid implements pluginhost.Pinger.
func (g *generation) Pid() int { return g.client.Pid() }

// Stop implements pluginhost.Process: the process is stopped (gracefully, then by
// force) and reaped.
func (g *generation) Stop(ctx context.Context) { g.client.Stop(ctx) }
