package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Process is one run of a plugin process as a Supervisor watches it.
type Process interface {
	// Done is closed when the process has ended or stopped answering.
	Done() <-chan struct{}
	// Err says why Done was closed.
	Err() error
	// Stop ends the process (gracefully, then by force) and waits for it up to ctx.
	Stop(ctx context.Context)
}

// State is where a supervised plugin is in its life.
type State string

// Plugin states.
const (
	Starting   State = "starting"   // a process is starting
	Running    State = "running"    // a process runs
	Restarting State = "restarting" // the process ended; waiting to start another
	Failed     State = "failed"     // crashed too often: not restarted
	Stopped    State = "stopped"    // stopped on purpose (shutdown, removed, replaced)
)

// Policy is the restart rule, the same for every plugin: after the n-th crash counted
// within Window, the next start waits BackoffMin·2^(n-1), at most BackoffMax (nothing
// when no crash is counted); MaxCrashes crashes within Window mark the plugin Failed
// (0: never). A start that fails counts as a crash.
//
// A running process that is a Pinger is pinged every PingInterval (0: never), each ping
// waiting at most PingInterval; PingMisses pings in a row unanswered (default 3) mark it
// hung: it is logged, its process group killed with SIGKILL, and it counts as a crash.
type Policy struct {
	BackoffMin   time.Duration
	BackoffMax   time.Duration
	MaxCrashes   int
	Window       time.Duration
	PingInterval time.Duration
	PingMisses   int
}

// Delay is the wait before a start after n recent crashes.
func (p Policy) Delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := p.BackoffMin
	for i := 1; i < n && d < p.BackoffMax; i++ {
		d *= 2
	}
	return min(d, p.BackoffMax)
}

// Config configures a Supervisor.
type Config struct {
	// What names the plugin in log messages: "codec plugin", "storage plugin".
	What string
	// Kind (Storage, Codec) and Name (as configured) label the plugin's metrics.
	Kind, Name string
	// Metrics, when set, count the plugin's restarts and hangs and show its state.
	Metrics *Metrics
	// Log receives the supervisor's lines (with the plugin's name attached).
	Log *slog.Logger
	// Policy returns the restart rule; it is read at each decision, so it may change.
	Policy func() Policy
	// Launch starts one process and returns once it is ready to serve.
	Launch func() (Process, error)
	// Crashed is told that a running process ended on its own, with why, before the
	// process is reaped and a restart is planned.
	Crashed func(p Process, err error)
	// Retire is told that the running process is being stopped on purpose, before it is
	// stopped.
	Retire func(p Process)
	// Failed is told that the plugin crashed too often and will not be restarted.
	Failed func()
}

// Supervisor keeps one plugin process running: it restarts it when it ends on its own,
// with the backoff of Policy, until Stop or until it has crashed too often. A process
// that ends while the supervisor is stopping is not restarted.
type Supervisor struct {
	cfg Config
	log *slog.Logger

	stopOnce  sync.Once
	stop      chan struct{}
	quiesce   chan struct{} // closed by Quiesce: nothing is started any more
	restart   chan struct{} // Restart: replace the running process now
	quiesceMu sync.Once
	done      chan struct{} // closed when Run ended
	started   bool          // Go was called (mu)

	mu        sync.Mutex
	state     State
	since     time.Time
	restarts  int
	crashes   []time.Time
	lastErr   error
	lastCrash time.Time
	hangs     int
}

// New returns a supervisor that has started nothing yet (state Starting).
func New(cfg Config) *Supervisor {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Retire == nil {
		cfg.Retire = func(Process) {}
	}
	if cfg.Crashed == nil {
		cfg.Crashed = func(Process, error) {}
	}
	if cfg.Failed == nil {
		cfg.Failed = func() {}
	}
	s := &Supervisor{cfg: cfg, log: cfg.Log, stop: make(chan struct{}), quiesce: make(chan struct{}),
		restart: make(chan struct{}), done: make(chan struct{}), state: Starting, since: time.Now()}
	cfg.Metrics.add(s)
	return s
}

// Launch starts one process now, without supervising it (Go does): Starting, then
// Running when it is ready. Its error is not counted as a crash (RecordCrash).
func (s *Supervisor) Launch() (Process, error) {
	s.SetState(Starting)
	p, err := s.cfg.Launch()
	if err != nil {
		return nil, err
	}
	s.SetState(Running)
	return p, nil
}

// Go supervises p (nil: none runs, start one first) in a new goroutine until Stop.
func (s *Supervisor) Go(p Process) {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	go s.run(p)
}

func (s *Supervisor) run(p Process) {
	defer close(s.done)
	for {
		if p != nil {
			if !s.watch(p) {
				return
			}
		}
		if s.tooManyCrashes() {
			return
		}
		delay := s.Policy().Delay(s.RecentCrashes())
		if p != nil || delay > 0 {
			s.SetState(Restarting)
			s.log.Info(s.cfg.What+" restarting", "in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			s.SetState(Stopped)
			return
		case <-s.quiesce:
			t.Stop()
			s.SetState(Stopped)
			return
		case <-s.restart: // an administrator does not wait for the backoff
			t.Stop()
			s.mu.Lock()
			s.crashes = nil
			s.mu.Unlock()
		}
		if s.stopping() || s.quiescing() {
			s.SetState(Stopped)
			return
		}
		again := p != nil || s.LastErr() != nil // not the first start of a Go(nil)
		var err error
		if p, err = s.Launch(); err != nil {
			s.log.Error(s.cfg.What+" did not start", "err", err)
			s.RecordCrash(err)
			continue
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		if again {
			s.cfg.Metrics.restarted(s)
		}
	}
}

// watch waits for the running process p to end, hang, or be stopped, and reports
// whether a restart is due (false: supervision is over). A process that ends while the
// supervisor is stopping or quiescing is retired, not restarted.
func (s *Supervisor) watch(p Process) bool {
	hung := make(chan error, 1)
	quit := make(chan struct{})
	stopPings := sync.OnceFunc(func() { close(quit) })
	defer stopPings()
	go s.watchHealth(p, hung, quit)
	select {
	case <-p.Done():
		stopPings()
		if s.stopping() || s.quiescing() {
			s.retire(p)
			return false
		}
		err := p.Err()
		if err == nil {
			err = errors.New("process ended")
		}
		s.crashed(p, err)
	case err := <-hung:
		stopPings()
		if s.stopping() || s.quiescing() {
			s.retire(p)
			return false
		}
		s.hang(p, err)
	case <-s.stop:
		stopPings()
		s.retire(p)
		return false
	case <-s.restart:
		stopPings()
		s.log.Info(s.cfg.What+" restarted by an administrator", "pid", pidOf(p))
		s.cfg.Retire(p)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p.Stop(ctx)
		cancel()
		s.mu.Lock()
		s.crashes = nil
		s.mu.Unlock()
	case <-s.quiesce:
		stopPings()
		// The gateway is shutting down: the process runs until Stop, but if it ends
		// before (a signal to every process of the service), it is not restarted.
		select {
		case <-p.Done():
		case <-s.stop:
		}
		s.retire(p)
		return false
	}
	return true
}

// pidOf is p's process id when it tells (0: unknown).
func pidOf(p Process) int {
	if pp, ok := p.(Pinger); ok {
		return pp.Pid()
	}
	return 0
}

// ErrNotRunning: Restart found no supervised process to replace.
var ErrNotRunning = errors.New("not running under supervision")

// Restart replaces the running process now (stopped on purpose, then a new one started
// at once, the crash count reset). It fails with ErrNotRunning when nothing is
// supervised: before Go, after Stop or Quiesce, or once the plugin failed (its host
// starts a new Supervisor for that).
func (s *Supervisor) Restart(ctx context.Context) error {
	s.mu.Lock()
	started, st := s.started, s.state
	s.mu.Unlock()
	if !started || st == Failed || st == Stopped {
		return fmt.Errorf("%s is %s: %w", s.cfg.What, st, ErrNotRunning)
	}
	select {
	case s.restart <- struct{}{}:
		return nil
	case <-s.done:
		return fmt.Errorf("%s: %w", s.cfg.What, ErrNotRunning)
	case <-s.quiesce:
		return fmt.Errorf("%s is shutting down: %w", s.cfg.What, ErrNotRunning)
	case <-ctx.Done():
		return fmt.Errorf("%s restart: %w", s.cfg.What, ctx.Err())
	}
}

// hang kills a process that stopped answering (its whole process group, SIGKILL) and
// handles it as a crash.
func (s *Supervisor) hang(p Process, err error) {
	pid := pidOf(p)
	s.log.Warn(s.cfg.What+" hung: killing its process group with SIGKILL and restarting it", "pid", pid, "err", err)
	if kerr := killGroup(pid); kerr != nil {
		s.log.Warn(s.cfg.What+" hung: kill failed", "pid", pid, "err", kerr)
	}
	s.mu.Lock()
	s.hangs++
	s.mu.Unlock()
	s.cfg.Metrics.hung(s)
	s.crashed(p, err)
}

// Policy is the restart rule now.
func (s *Supervisor) Policy() Policy { return s.cfg.Policy() }

func (s *Supervisor) stopping() bool  { return isClosed(s.stop) }
func (s *Supervisor) quiescing() bool { return isClosed(s.quiesce) }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Quiesce tells the supervisor that its owner is shutting down (call it first thing on
// SIGTERM): from now on no process is started, and a process that ends (say, from a
// signal sent to every process of the service) is not restarted and not counted as a
// crash. The running process keeps running until Stop.
func (s *Supervisor) Quiesce() { s.quiesceMu.Do(func() { close(s.quiesce) }) }

// Stopping is closed once Stop was called.
func (s *Supervisor) Stopping() <-chan struct{} { return s.stop }

// crashed handles the end of a process that was not asked to stop.
func (s *Supervisor) crashed(p Process, err error) {
	s.SetState(Restarting)
	s.RecordCrash(err)
	s.cfg.Crashed(p, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	p.Stop(ctx) // reap it
	cancel()
}

// retire stops the running process on purpose.
func (s *Supervisor) retire(p Process) {
	s.cfg.Retire(p)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	p.Stop(ctx)
	cancel()
	s.SetState(Stopped)
}

// RecordCrash counts a crash, or a start that failed, with its reason.
func (s *Supervisor) RecordCrash(err error) {
	now := time.Now()
	s.mu.Lock()
	s.crashes = append(s.crashes, now)
	s.lastErr, s.lastCrash = err, now
	s.mu.Unlock()
}

// tooManyCrashes marks the plugin Failed when it crashed MaxCrashes times in Window.
func (s *Supervisor) tooManyCrashes() bool {
	pol := s.Policy()
	n := s.RecentCrashes()
	if pol.MaxCrashes <= 0 || n < pol.MaxCrashes {
		return false
	}
	s.SetState(Failed)
	s.cfg.Failed()
	s.log.Error(s.cfg.What+" failed: not restarted again until the configuration changes or an administrator restarts it",
		"crashes", n, "window", pol.Window, "last_error", s.LastErr())
	return true
}

// RecentCrashes counts the crashes within the policy's window.
func (s *Supervisor) RecentCrashes() int {
	cut := time.Now().Add(-s.Policy().Window)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashes = slices.DeleteFunc(s.crashes, func(t time.Time) bool { return t.Before(cut) })
	return len(s.crashes)
}

// SetState records a state change (the hosts set Stopped on a process that Go never
// supervised).
func (s *Supervisor) SetState(st State) {
	s.mu.Lock()
	if s.state != st {
		s.state, s.since = st, time.Now()
	}
	s.mu.Unlock()
	if st == Stopped {
		s.cfg.Metrics.remove(s)
	}
}

// State is where the plugin is now.
func (s *Supervisor) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// LastErr is why the last process crashed or did not start (nil: none did).
func (s *Supervisor) LastErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Stats describes a supervised plugin.
type Stats struct {
	State         State
	Since         time.Time // when it entered State
	Restarts      int       // processes started by the supervisor after the first
	RecentCrashes int       // within the policy's window
	Hangs         int       // processes killed for not answering pings
	LastError     string
	LastCrash     time.Time
}

// Stats reports the plugin's state and history.
func (s *Supervisor) Stats() Stats {
	n := s.RecentCrashes()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{State: s.state, Since: s.since, Restarts: s.restarts, RecentCrashes: n, LastCrash: s.lastCrash, Hangs: s.hangs}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}

// Stop stops supervising, stops the running process and waits for that up to ctx. It
// may be called more than once.
func (s *Supervisor) Stop(ctx context.Context) {
	s.stopOnce.Do(func() { close(s.stop) })
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		s.SetState(Stopped)
		return
	}
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}
