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
	"google.golang.org/grpc"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/subproc"
	"github.com/timgw/timgw/plugins/pluginlog"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// conn is an opened store as the host uses it. *storage.Client implements it.
type conn interface {
	storage.Backend
	// AppendOne stores one chat (batched with other callers' chats).
	AppendOne(ctx context.Context, r *pb.AppendRequest) (*pb.AppendResult, error)
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
}

// Supervisor runs the storage plugin subprocess and restarts it when it dies, with
// backoff: immediately, then after 100ms doubling up to storage.restart_backoff. While
// it is down, get fails (after a short wait for a restart in progress).
type Supervisor struct {
	opts      Options
	cfg       config.Storage
	openCfg   []byte
	socketDir string
	ownSocket bool
	log       *slog.Logger

	mu        sync.Mutex
	cur       *instance     // nil while down
	up        chan struct{} // closed when cur is set; replaced when it is cleared
	downSince time.Time
	lastErr   error         // why the last start failed
	kick      chan struct{} // wakes the loop to check the plugin now
	stop      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
}

var _ source = (*Supervisor)(nil)

// instance is one run of the plugin process.
type instance struct {
	pc     *plugin.Client
	client *storage.Client
	name   string
}

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

// Start starts the plugin and waits until its store is open (storage.start_timeout).
// The returned Supervisor keeps it running until Stop.
func Start(ctx context.Context, o Options) (*Supervisor, error) {
	cfg := o.Storage.Resolved()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Getenv(storage.Handshake.MagicCookieKey) != "" {
		// This process was started as a storage plugin but runs the gateway (an executable
		// without the plugin entry point): starting a plugin here would recurse.
		return nil, errors.New("storage: refusing to start a storage plugin from a storage plugin process (is the executable missing store.MaybeRunBuiltin?)")
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
		up: make(chan struct{}), downSince: time.Now(), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.socketDir = cfg.SocketDir
	if s.socketDir == "" {
		if s.socketDir, err = os.MkdirTemp("", "timgw-storage-"); err != nil {
			return nil, fmt.Errorf("storage: socket directory: %w", err)
		}
		s.ownSocket = true
	} else if err := os.MkdirAll(s.socketDir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: socket directory: %w", err)
	}
	go s.loop()
	start, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if _, err := s.get(start, cfg.StartTimeout); err != nil {
		last := s.lastError()
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
		cmd = exec.Command(s.opts.Executable, BuiltinArg, s.cfg.Plugin)
	}
	subproc.Tie(cmd)
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
	return &instance{pc: pc, client: client, name: info.GetName() + " " + info.GetVersion()}, nil
}

// loop keeps the plugin running until Stop.
func (s *Supervisor) loop() {
	defer close(s.done)
	backoff := time.Duration(0)
	for {
		inst, err := s.launch()
		if err != nil {
			s.setErr(err)
			s.log.Error("storage plugin failed to start", "err", err, "retry_in", backoff)
		} else {
			s.log.Info("storage plugin ready", "version", inst.name, "pid", inst.pc.ReattachConfig().Pid)
			s.setUp(inst)
			started := time.Now()
			s.watch(inst)
			s.setDown()
			_ = inst.client.Close()
			inst.pc.Kill()
			if time.Since(started) > 30*time.Second {
				backoff = 0 // it ran fine for a while: restart at once
			}
		}
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), s.cfg.RestartBackoff)
	}
}

// watch returns when the plugin process exited, stopped answering, or Stop was called.
func (s *Supervisor) watch(inst *instance) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	lastPing := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		case <-s.kick:
		}
		if inst.pc.Exited() {
			s.log.Error("storage plugin exited; restarting")
			return
		}
		if time.Since(lastPing) >= 2*time.Second {
			lastPing = time.Now()
			rpc, err := inst.pc.Client()
			if err == nil {
				err = rpc.Ping()
			}
			if err != nil {
				s.log.Error("storage plugin does not answer; restarting", "err", err)
				return
			}
		}
	}
}

func (s *Supervisor) setUp(inst *instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = inst
	s.lastErr = nil
	close(s.up)
}

func (s *Supervisor) setDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	select {
	case <-s.stop:
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
	case <-s.stop:
	}
	return nil, fmt.Errorf("storage plugin restarting: %w", storage.ErrUnavailable)
}

func (s *Supervisor) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
}

func (s *Supervisor) lastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// failed implements source: it makes the loop check the plugin now.
func (s *Supervisor) failed(conn) {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Stop stops the plugin and waits for it to exit.
func (s *Supervisor) Stop() {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
		if s.ownSocket {
			_ = os.RemoveAll(s.socketDir)
		}
	})
}

// Pid returns the plugin process's id (0 while down): for tests and the admin status.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	if rc := s.cur.pc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}
