package lua

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/scripts"
)

// Presence tells whether a user is online; the gateway's session registry implements
// it. It is called from script calls on many goroutines at once and must be fast and
// non-blocking.
type Presence interface {
	Online(userID string) bool
}

// Options are the dependencies of a Runtime. Every field is optional.
type Options struct {
	// Logger receives load errors, script failures and tim.log output (nil:
	// slog.Default()).
	Logger *slog.Logger
	// Registerer receives the hook metrics (nil: no metrics).
	Registerer prometheus.Registerer
	// Presence answers tim.is_online (nil: every user is offline).
	Presence Presence
	// Builtin holds the scripts used when the configured directory does not exist
	// (nil: the scripts shipped in the binary, package scripts). It is not watched.
	Builtin fs.FS
}

// Runtime is the Lua implementation of hook.Runner. It is safe for concurrent use.
type Runtime struct {
	log      *slog.Logger
	presence Presence
	builtin  fs.FS
	metrics  *metrics
	counters *Counters
	kv       *KV // tim.kv_set / tim.kv_get
	regexes  regexCache
	epoch    time.Time
	now      atomic.Int64 // coarse clock: ns since epoch, advanced by the watchdog

	gen     atomic.Pointer[generation] // what calls use
	maxVMs  atomic.Int64               // pool size of gen
	liveVMs atomic.Int64               // VMs created and not discarded
	idle    idleStack                  // VMs free for a call

	vmsMu sync.Mutex
	vms   map[*vm]struct{} // every live VM, for the watchdog

	reloadMu sync.Mutex // serializes rebuilds
	cfg      config.Hooks
	fsys     fs.FS
	watched  string // directory watched, "" when none
	watcher  *watcher
	scripts  map[string]*scriptState // by name, for Status and reuse
	order    []string                // names in load order, for Status
	nextGen  uint64

	tick      chan time.Duration
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var (
	_ hook.Runner         = (*Runtime)(nil)
	_ hook.StatusReporter = (*Runtime)(nil)
)

// maxPool bounds hooks.pool_size.
const maxPool = 4096

// New loads the scripts of cfg and starts watching their directory (cfg.Watch). It
// fails when cfg is invalid or a configured script cannot be loaded: at start there is
// no previous version to keep. With cfg.Enabled false it returns a Runtime whose hooks
// do nothing until a Reload enables them. Close releases it.
func New(cfg config.Hooks, opts Options) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runtime{
		log:      opts.Logger,
		presence: opts.Presence,
		builtin:  opts.Builtin,
		epoch:    time.Now(),
		idle:     idleStack{signal: make(chan struct{}, 1)},
		vms:      make(map[*vm]struct{}),
		scripts:  make(map[string]*scriptState),
		tick:     make(chan time.Duration, 1),
		closed:   make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.counters = newCounters(r.coarse)
	r.kv = newKV(r.coarse)
	if r.builtin == nil {
		r.builtin = scripts.FS
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	r.metrics = m
	r.gen.Store(&generation{})
	r.wg.Add(1)
	go r.watchdog() // before loading: a chunk that loops at load time must be stopped
	if err := r.apply(cfg, "start"); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Reload applies a new hooks configuration (script list, order, policies, timeout,
// pool size, vars, directory) and reloads every script. A script that fails keeps its
// previous version (or stays inactive); the returned error lists such failures, or
// reports an invalid configuration, in which case nothing changed.
func (r *Runtime) Reload(cfg config.Hooks) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return r.apply(cfg, "reload")
}

// apply rebuilds everything for cfg and updates the watch.
func (r *Runtime) apply(cfg config.Hooks, why string) error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	select {
	case <-r.closed:
		return errors.New("hooks runtime closed")
	default:
	}
	if why == "reload" && cfg.Enabled {
		if err := r.checkVars(cfg.Scripts, cfg.Vars); err != nil {
			return fmt.Errorf("refused: the vars do not fit the scripts: %w", err)
		}
	}
	r.cfg = cfg
	r.fsys, r.watched = r.source(cfg)
	if err := r.rewatch(); err != nil {
		r.log.Warn("hooks: cannot watch scripts directory; hot reload is off", "dir", cfg.Dir, "error", err)
	}
	return r.rebuild(why, why == "start")
}

// source picks the directory of cfg, or the built-in scripts when it does not exist.
func (r *Runtime) source(cfg config.Hooks) (fs.FS, string) {
	if !cfg.Enabled {
		return nil, ""
	}
	if st, err := os.Stat(cfg.Dir); err == nil && st.IsDir() {
		if cfg.Watch {
			return os.DirFS(cfg.Dir), cfg.Dir
		}
		return os.DirFS(cfg.Dir), ""
	}
	r.log.Warn("hooks: scripts directory not found, using the built-in scripts (no hot reload)", "dir", cfg.Dir)
	return r.builtin, ""
}

// rescan reloads the scripts after a change in the directory watched by w.
func (r *Runtime) rescan(w *watcher) {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if r.watcher != w {
		return // closed or replaced meanwhile
	}
	_ = r.rebuild("watch", false) // failures are logged and kept in Status
}

// Counters returns the counters shared by the scripts (tim.incr), for tests and tools.
func (r *Runtime) Counters() *Counters { return r.counters }

// Close stops the watcher and the deadline watchdog, stops scripts still running and
// frees the Lua states. Calls made after Close return zero replies (hooks off).
func (r *Runtime) Close() error {
	r.closeOnce.Do(func() {
		r.reloadMu.Lock()
		close(r.closed)
		if r.watcher != nil {
			r.watcher.close()
			r.watcher = nil
		}
		r.gen.Store(&generation{})
		r.reloadMu.Unlock()
		r.wg.Wait()
		// The watchdog is gone: stop whatever still runs (it is discarded on release).
		r.vmsMu.Lock()
		for v := range r.vms {
			v.stop.Store(true)
		}
		r.vmsMu.Unlock()
		for v := r.idle.pop(); v != nil; v = r.idle.pop() {
			r.discard(v)
		}
	})
	return nil
}

// poolSize resolves hooks.pool_size.
func poolSize(n int) int {
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	return min(n, maxPool)
}

// clock is the monotonic time in ns since the Runtime started.
func (r *Runtime) clock() int64 { return int64(time.Since(r.epoch)) }

// coarse is clock as of the watchdog's last tick (about one tick late); reading it
// costs an atomic load instead of a clock read. Counter lifetimes use it.
func (r *Runtime) coarse() int64 { return r.now.Load() }

// tickClock advances the coarse clock and returns it (watchdog goroutine).
func (r *Runtime) tickClock() int64 {
	c := r.clock()
	r.now.Store(c)
	return c
}

// deadline returns the deadline of a call of timeout ns starting now. It reads the
// exact clock: a coarse one would be late when the watchdog is starved, and stop
// scripts early.
func (r *Runtime) deadline(timeout int64) int64 { return r.clock() + timeout }
