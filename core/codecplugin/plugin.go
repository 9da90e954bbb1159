package codecplugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/pluginhost"
	sdk "github.com/timgw/timgw/plugins/codec"
)

// State is where a plugin is in its life.
type State string

// Plugin states.
const (
	StateStarting   State = "starting"   // the process is starting
	StateRunning    State = "running"    // serving connections
	StateRestarting State = "restarting" // crashed, waiting to be restarted
	StateFailed     State = "failed"     // crashed too often: not restarted
	StateStopped    State = "stopped"    // stopped (shutdown, removed or replaced)
)

// plugin is one configured codec plugin and its supervisor.
type plugin struct {
	m     *Manager
	cfg   config.CodecPlugin
	proto *protocol

	matcher atomic.Pointer[sdk.Matcher] // the last process's recogniser (kept across restarts)
	gen     atomic.Pointer[generation]  // the running process, or nil

	mu        sync.Mutex
	state     State
	since     time.Time
	info      sdk.Info
	wire      int
	pid       int
	restarts  int
	crashes   []time.Time
	lastErr   string
	lastCrash time.Time
	binary    fileStamp // the executable as it was at the last start (path plugins)

	stopOnce sync.Once
	stopCh   chan struct{}
	stopWhy  string
	done     chan struct{} // the supervisor ended
}

func newPlugin(m *Manager, cfg config.CodecPlugin) *plugin {
	p := &plugin{m: m, cfg: cfg, state: StateStarting, since: time.Now(),
		stopCh: make(chan struct{}), done: make(chan struct{})}
	p.proto = &protocol{pl: p}
	return p
}

func (p *plugin) setState(s State) {
	p.mu.Lock()
	if p.state != s {
		p.state, p.since = s, time.Now()
	}
	p.mu.Unlock()
}

func (p *plugin) stateName() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

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

// launch starts a process and publishes it as the running generation.
func (p *plugin) launch() (*generation, error) {
	p.setState(StateStarting)
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
	if info.Name != "" && info.Name != p.cfg.Name {
		p.m.log.Info("codec plugin calls its protocol differently; the configured name is used",
			"plugin", p.cfg.Name, "plugin_says", info.Name)
	}
	g.client = client
	p.matcher.Store(m)
	p.gen.Store(g)
	p.mu.Lock()
	p.info, p.wire, p.pid = info, client.Version(), client.Pid()
	p.state, p.since = StateRunning, time.Now()
	p.mu.Unlock()
	p.m.log.Info("codec plugin started", "plugin", p.cfg.Name, "command", p.describe(), "pid", client.Pid(),
		"version", info.Version, "wire", client.Version(), "shared_port", m != nil,
		"took", time.Since(started).Round(time.Millisecond))
	return g, nil
}

// supervise watches the running process g (nil: start one first) and restarts it
// when it crashes, until stopped or failed.
func (p *plugin) supervise(g *generation) {
	defer close(p.done)
	for {
		if g != nil {
			select {
			case <-g.client.Done():
				p.crashed(g, g.client.Err())
			case <-p.stopCh:
				p.retire(g)
				return
			}
		}
		if p.tooManyCrashes() {
			return
		}
		delay := p.backoff()
		p.setState(StateRestarting)
		p.m.log.Info("codec plugin restarting", "plugin", p.cfg.Name, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-p.stopCh:
			t.Stop()
			p.setState(StateStopped)
			return
		}
		var err error
		if g, err = p.launch(); err != nil {
			p.m.log.Error("codec plugin did not start", "plugin", p.cfg.Name, "err", err)
			p.recordCrash(err)
			continue
		}
		p.mu.Lock()
		p.restarts++
		p.mu.Unlock()
	}
}

// startAsync starts the supervisor, launching the first process itself.
func (p *plugin) startAsync() {
	go func() {
		g, err := p.launch()
		if err != nil {
			p.m.log.Error("codec plugin did not start", "plugin", p.cfg.Name, "err", err)
			p.recordCrash(err)
		}
		p.supervise(g)
	}()
}

func (p *plugin) recordCrash(err error) {
	now := time.Now()
	p.mu.Lock()
	p.crashes = append(p.crashes, now)
	p.lastErr, p.lastCrash = err.Error(), now
	p.mu.Unlock()
}

// crashed handles the end of a process that was not asked to stop.
func (p *plugin) crashed(g *generation, err error) {
	if err == nil {
		err = errors.New("stream ended")
	}
	p.gen.CompareAndSwap(g, nil)
	p.mu.Lock()
	pid := p.pid
	p.state, p.since = StateRestarting, time.Now()
	p.mu.Unlock()
	closed := g.fail(fmt.Sprintf("codec plugin %s crashed (%v); clients may reconnect once it is restarted", p.cfg.Name, err))
	p.m.log.Error("codec plugin crashed", "plugin", p.cfg.Name, "pid", pid, "err", err, "connections_closed", closed)
	p.recordCrash(err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	g.client.Stop(ctx) // reap the process
	cancel()
}

// tooManyCrashes marks the plugin failed when it crashed MaxCrashes times in Window.
func (p *plugin) tooManyCrashes() bool {
	pol := p.m.restart()
	cut := time.Now().Add(-pol.Window)
	p.mu.Lock()
	p.crashes = slices.DeleteFunc(p.crashes, func(t time.Time) bool { return t.Before(cut) })
	n := len(p.crashes)
	failed := n >= pol.MaxCrashes
	if failed {
		p.state, p.since = StateFailed, time.Now()
	}
	lastErr := p.lastErr
	p.mu.Unlock()
	if failed {
		p.matcher.Store(nil) // its clients now get "unknown protocol" instead of a close
		p.m.log.Error("codec plugin failed: not restarted again until the configuration changes or an administrator restarts it",
			"plugin", p.cfg.Name, "crashes", n, "window", pol.Window, "last_error", lastErr)
	}
	return failed
}

// backoff is the wait before the next restart: BackoffMin doubled per recent crash.
func (p *plugin) backoff() time.Duration {
	pol := p.m.restart()
	p.mu.Lock()
	n := len(p.crashes)
	p.mu.Unlock()
	d := pol.BackoffMin
	for i := 1; i < n && d < pol.BackoffMax; i++ {
		d *= 2
	}
	return min(d, pol.BackoffMax)
}

// retire stops the running process g on purpose.
func (p *plugin) retire(g *generation) {
	p.gen.CompareAndSwap(g, nil)
	p.matcher.Store(nil)
	if n := g.fail(p.stopWhy); n > 0 {
		p.m.log.Info("codec plugin connections closed", "plugin", p.cfg.Name, "connections", n, "reason", p.stopWhy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	g.client.Stop(ctx)
	cancel()
	p.setState(StateStopped)
	p.m.log.Info("codec plugin stopped", "plugin", p.cfg.Name, "reason", p.stopWhy)
}

// stop asks the supervisor to stop the plugin, closing its connections with reason,
// and waits for it up to ctx.
func (p *plugin) stop(ctx context.Context, reason string) {
	p.stopOnce.Do(func() {
		p.stopWhy = reason
		close(p.stopCh)
	})
	select {
	case <-p.done:
	case <-ctx.Done():
	}
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
