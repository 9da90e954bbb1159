package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/pluginhost"
	"github.com/timgw/timgw/plugins/codec/pluginlog"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// conn is an opened store as the host uses it. *storage.Client implements it.
type conn interface {
	storage.Backend
	// AppendOne stores one chat (batched with other callers' chats).
	AppendOne(ctx context.Context, r *pb.AppendRequest) (*pb.AppendResult, error)
	// AppendAsync queues one chat and calls done with its result (storage.Client).
	AppendAsync(r *pb.AppendRequest, timeout time.Duration, done storage.AppendDone)
}

var _ conn = (*storage.Client)(nil)

// source hands out the current store connection.
type source interface {
	// get returns the current connection, waiting up to wait for one while the plugin
	// (re)starts; an error wraps storage.ErrUnavailable.
	get(ctx context.Context, wait time.Duration) (conn, error)
	// failed reports that c answered ErrUnavailable (its plugin may have died).
	failed(c conn)
}

// Options configure a Supervisor.
type Options struct {
	// Storage is the configuration (defaults are applied).
	Storage config.Storage
	// Executable is the timgw executable for built-in plugins (default os.Executable).
	Executable string
	// Logger receives the supervisor's and the plugin's logs.
	Logger *slog.Logger
	// Client tunes the write stream.
	Client storage.ClientOptions
	// Registerer, when set, gets the storage metrics (timgw_storage_*).
	Registerer prometheus.Registerer
	// PluginMetrics, when set, count the plugin's restarts and hangs (timgw_plugin_*).
	PluginMetrics *pluginhost.Metrics
}

// Supervisor runs the storage plugin subprocess and keeps it running with a
// pluginhost.Supervisor: restarted when it dies or stops answering (storage.ping_misses
// pings in a row, one every storage.ping_interval, unanswered: it is killed), after the
// backoff of pluginhost.Policy (100ms doubling per crash of the last 30s, up to
// storage.restart_backoff), never given up on. While it is down, get fails (after a short
// wait for a restart in progress).
type Supervisor struct {
	opts      Options
	cfg       config.Storage
	openCfg   []byte
	socketDir string
	rmSocket  func() error
	log       *slog.Logger
	host      *pluginhost.Supervisor
	metrics   *metrics
	kick      chan struct{} // wakes the running instance's watch to check the plugin now
	fatal     chan error    // a start failed in a way no retry mends (storage.ErrInUse)

	mu        sync.Mutex
	cur       *instance     // nil while down
	up        chan struct{} // closed when cur is set; replaced when it is cleared
	downSince time.Time
	stopOnce  sync.Once
}

var _ source = (*Supervisor)(nil)

// instance is one run of the plugin process.
type instance struct {
	pc     *plugin.Client
	client *storage.Client
	name   string

	done    chan struct{} // closed when the process exited or stopped answering
	err     error         // why; set before done is closed
	quit    chan struct{} // closed by Stop: the watch ends
	stopped sync.Once
}

var _ pluginhost.Process = (*instance)(nil)

// PluginConfig returns the JSON object given to the plugin's Open.
func PluginConfig(s config.Storage) ([]byte, error) {
	s = s.Resolved()
	switch s.Plugin {
	case config.StorageBolt:
		return json.Marshal(map[string]any{"dir": s.Dir, "nosync": s.NoSync})
	case config.StorageMongo:
		return json.Marshal(map[string]any{"uri": s.Mongo.URI, "database": s.Mongo.Database, "timeout": s.Mongo.Timeout.String()})
	case config.StorageExternal:
		if s.Options == nil {
			return []byte("{}"), nil
		}
		b, err := json.Marshal(s.Options)
		if err != nil {
			return nil, fmt.Errorf("storage.options: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("storage.plugin %q has no plugin to run", s.Plugin)
}

// storageCrashWindow is how long a crash counts towards the backoff of the next restart.
const storageCrashWindow = 30 * time.Second

// Start starts the plugin and waits until its store is open (storage.start_timeout).
// The returned Supervisor keeps it running until Stop.
func Start(ctx context.Context, o Options) (*Supervisor, error) {
	cfg := o.Storage.Resolved()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Plugin != config.StorageExternal && !pluginhost.Registered(pluginhost.Storage, cfg.Plugin) {
		return nil, fmt.Errorf("storage.plugin: %q is not built into this binary (built in: %v)", cfg.Plugin, pluginhost.Names(pluginhost.Storage))
	}
	if os.Getenv(storage.Handshake.MagicCookieKey) != "" {
		// This process was started as a storage plugin but runs the gateway (an executable
		// without the plugin entry point): starting a plugin here would recurse.
		return nil, errors.New("storage: refusing to start a storage plugin from a storage plugin process (does the executable call pluginhost.Main?)")
	}
	openCfg, err := PluginConfig(cfg)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Executable == "" && cfg.Plugin != config.StorageExternal {
		if o.Executable, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("storage: find the timgw executable for the built-in plugin: %w", err)
		}
	}
	s := &Supervisor{opts: o, cfg: cfg, openCfg: openCfg, log: o.Logger.With("component", "storage", "plugin", cfg.Plugin),
		up: make(chan struct{}), downSince: time.Now(), kick: make(chan struct{}, 1), fatal: make(chan error, 1)}
	if s.metrics, err = newMetrics(o.Registerer); err != nil {
		return nil, err
	}
	if s.metrics != nil {
		onBatch := o.Client.OnBatch
		s.opts.Client.OnBatch = func(n int) {
			s.metrics.batch(n)
			if onBatch != nil {
				onBatch(n)
			}
		}
		onDone := o.Client.OnBatchDone
		s.opts.Client.OnBatchDone = func(d time.Duration) {
			s.metrics.batchDone(d)
			if onDone != nil {
				onDone(d)
			}
		}
	}
	if s.socketDir, s.rmSocket, err = pluginhost.SocketDir(cfg.SocketDir, "timgw-storage-", s.log); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	pol := pluginhost.Policy{BackoffMin: min(100*time.Millisecond, cfg.RestartBackoff), BackoffMax: cfg.RestartBackoff, Window: storageCrashWindow,
		PingInterval: cfg.PingInterval, PingMisses: cfg.PingMisses}
	s.host = pluginhost.New(pluginhost.Config{
		What: "storage plugin", Kind: pluginhost.Storage, Name: cfg.Plugin, Metrics: o.PluginMetrics, Log: s.log,
		Policy: func() pluginhost.Policy { return pol },
		Launch: func() (pluginhost.Process, error) {
			inst, err := s.launch()
			if err != nil {
				if errors.Is(err, storage.ErrInUse) {
					select {
					case s.fatal <- err:
					default:
					}
				}
				return nil, err
			}
			s.setUp(inst)
			return inst, nil
		},
		Crashed: func(p pluginhost.Process, err error) {
			s.setDown()
			s.log.Error("storage plugin ended; restarting", "err", err)
		},
		Retire: func(pluginhost.Process) { s.setDown() },
	})
	s.host.Go(nil)
	start, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() {
		_, err := s.get(start, cfg.StartTimeout)
		ready <- err
	}()
	select {
	case err = <-ready:
	case err = <-s.fatal: // no use retrying until start_timeout
		s.Stop()
		return nil, fmt.Errorf("storage plugin %s did not start: %w", cfg.Plugin, err)
	}
	if err != nil {
		last := s.host.LastErr()
		s.Stop()
		if last != nil {
			return nil, fmt.Errorf("storage plugin %s did not start within %v: %w", cfg.Plugin, cfg.StartTimeout, last)
		}
		return nil, fmt.Errorf("storage plugin %s did not start within %v: %w", cfg.Plugin, cfg.StartTimeout, err)
	}
	return s, nil
}

// command returns the plugin's command line.
func (s *Supervisor) command() *exec.Cmd {
	var cmd *exec.Cmd
	if s.cfg.Plugin == config.StorageExternal {
		cmd = exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	} else {
		cmd = pluginhost.Command(s.opts.Executable, pluginhost.Storage, s.cfg.Plugin)
	}
	pluginhost.Tie(cmd)
	return cmd
}

var errStopped = errors.New("storage stopped")

// launch starts one plugin process and opens its store.
func (s *Supervisor) launch() (*instance, error) {
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: storage.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			storage.ProtocolVersion: {storage.PluginName: &storage.GRPCPlugin{ClientOptions: s.opts.Client}},
		},
		Cmd:              s.command(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           pluginlog.Hclog(s.log),
		StartTimeout:     15 * time.Second,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: s.socketDir},
		GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(storage.CallOptions()...)},
	})
	rpc, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("start: %w", err)
	}
	raw, err := rpc.Dispense(storage.PluginName)
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("dispense: %w", err)
	}
	client, ok := raw.(*storage.Client)
	if !ok {
		pc.Kill()
		return nil, fmt.Errorf("dispense: got %T", raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	defer cancel()
	info, err := client.Open(ctx, &pb.OpenRequest{Config: s.openCfg})
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("open: %w", err)
	}
	inst := &instance{pc: pc, client: client, name: info.GetName() + " " + info.GetVersion(),
		done: make(chan struct{}), quit: make(chan struct{})}
	s.log.Info("storage plugin ready", "version", inst.name, "pid", inst.pid())
	go inst.watch(s.kick)
	return inst, nil
}

// watch closes done when the plugin process exited; kick makes it check now. (Whether
// it still answers is the pluginhost.Supervisor's to find out: instance is a Pinger.)
func (inst *instance) watch(kick <-chan struct{}) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-inst.quit:
			return
		case <-tick.C:
		case <-kick:
		}
		if inst.pc.Exited() {
			inst.end(errors.New("the plugin process exited"))
			return
		}
	}
}

var _ pluginhost.Pinger = (*instance)(nil)

// Ping implements pluginhost.Pinger.
func (inst *instance) Ping(ctx context.Context) error { return pluginhost.Ping(ctx, inst.pc) }

// Pid implements pluginhost.Pinger.
func (inst *instance) Pid() int { return inst.pid() }

func (inst *instance) end(err error) {
	inst.err = err
	close(inst.done)
}

// Done implements pluginhost.Process.
func (inst *instance) Done() <-chan struct{} { return inst.done }

// Err implements pluginhost.Process.
func (inst *instance) Err() error {
	select {
	case <-inst.done:
		return inst.err
	default:
		return nil
	}
}

// Stop implements pluginhost.Process: the store is closed and the process killed
// (gracefully first: go-plugin waits up to 2s).
func (inst *instance) Stop(context.Context) {
	inst.stopped.Do(func() {
		close(inst.quit)
		_ = inst.client.Close()
		inst.pc.Kill()
	})
}

func (inst *instance) pid() int {
	if rc := inst.pc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

func (s *Supervisor) setUp(inst *instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = inst
	close(s.up)
}

func (s *Supervisor) setDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return
	}
	s.cur = nil
	s.up = make(chan struct{})
	s.downSince = time.Now()
}

// get implements source. While the plugin has been down longer than wait, it fails at
// once, so that chats are refused quickly rather than piling up.
func (s *Supervisor) get(ctx context.Context, wait time.Duration) (conn, error) {
	s.mu.Lock()
	cur, up, since := s.cur, s.up, s.downSince
	s.mu.Unlock()
	if cur != nil {
		return cur.client, nil
	}
	stopping := s.host.Stopping()
	select {
	case <-stopping:
		return nil, fmt.Errorf("%w: %w", errStopped, storage.ErrUnavailable)
	default:
	}
	left := wait - time.Since(since)
	if left <= 0 {
		return nil, fmt.Errorf("storage plugin down since %s: %w", since.Format(time.RFC3339), storage.ErrUnavailable)
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-up:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur != nil {
			return s.cur.client, nil
		}
	case <-t.C:
	case <-ctx.Done():
	case <-stopping:
	}
	return nil, fmt.Errorf("storage plugin restarting: %w", storage.ErrUnavailable)
}

// failed implements source: it makes the running instance check the plugin now.
func (s *Supervisor) failed(conn) {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Restart replaces the running plugin process now (an administrator's request): the
// process is stopped, chats wait for the new one like after a crash.
func (s *Supervisor) Restart(ctx context.Context) error { return s.host.Restart(ctx) }

// Status is the storage plugin's part of /admin/status.
type Status struct {
	Plugin        string           `json:"plugin"`
	Version       string           `json:"version,omitempty"`
	State         pluginhost.State `json:"state"`
	Since         time.Time        `json:"since"`
	PID           int              `json:"pid,omitempty"`
	Restarts      int              `json:"restarts"`
	Hangs         int              `json:"hangs"`
	RecentCrashes int              `json:"recentCrashes"`
	LastError     string           `json:"lastError,omitempty"`
	LastCrash     time.Time        `json:"lastCrash,omitzero"`
	// ReadFanout: the running plugin stores large groups' chats once (read fan-out,
	// storage.read_fanout_members); false: every group chat is written to each member.
	ReadFanout bool `json:"readFanout"`
}

// Status reports the plugin's state and history.
func (s *Supervisor) Status() Status {
	h := s.host.Stats()
	st := Status{Plugin: s.cfg.Plugin, State: h.State, Since: h.Since, Restarts: h.Restarts, Hangs: h.Hangs,
		RecentCrashes: h.RecentCrashes, LastError: h.LastError, LastCrash: h.LastCrash}
	s.mu.Lock()
	if s.cur != nil {
		st.Version, st.PID, st.ReadFanout = s.cur.name, s.cur.pid(), s.cur.client.ReadFanout()
	}
	s.mu.Unlock()
	return st
}

// Quiesce tells the supervisor the gateway is shutting down: the plugin runs until Stop
// but is not restarted if it ends before (pluginhost.Supervisor.Quiesce).
func (s *Supervisor) Quiesce() { s.host.Quiesce() }

// Stop stops the plugin and waits for it to exit.
func (s *Supervisor) Stop() {
	s.stopOnce.Do(func() {
		s.host.Stop(context.Background())
		_ = s.rmSocket()
	})
}

// Pid returns the plugin process's id (0 while down): for tests and the admin status.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.pid()
}

// Shared reports whether the running plugin declared its store shared by every gateway
// opened on the same configuration (OpenResponse.shared): what a cluster needs.
func (s *Supervisor) Shared() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.cur.client.Shared()
}
