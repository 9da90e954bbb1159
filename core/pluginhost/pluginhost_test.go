package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The test binary doubles as the plugin executable, through the one entry point.
func TestMain(m *testing.M) {
	Register(
		Builtin{Kind: "test", Name: "sleep", Main: func() { time.Sleep(time.Minute) }},
		Builtin{Kind: "test", Name: "exit", Main: func() { os.Exit(3) }},
		Builtin{Kind: "test", Name: "args", Main: func() { fmt.Print(strings.Join(os.Args[4:], ",")) }},
	)
	Main()
	os.Exit(m.Run())
}

func TestRun(t *testing.T) {
	tests := []struct {
		args    []string
		ran     bool
		wantErr string
	}{
		{nil, false, ""},
		{[]string{"-config", "x.yaml"}, false, ""},
		{[]string{Arg, "test"}, true, "needs a kind and a name"},
		{[]string{Arg, "test", "nope"}, true, "no built-in test plugin \"nope\" in this binary (built in: [args exit sleep])"},
		{[]string{Arg, "storage", "sleep"}, true, "no built-in storage plugin \"sleep\""},
	}
	for _, tt := range tests {
		ran, err := Run(tt.args)
		if ran != tt.ran || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Run(%q) = %v, %v; want %v, %q", tt.args, ran, err, tt.ran, tt.wantErr)
		}
	}
}

func TestCommandRunsBuiltinFromExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Command(exe, "test", "args", "a", "b").Output()
	if err != nil || string(out) != "a,b" {
		t.Fatalf("built-in plugin printed %q, %v; want \"a,b\"", out, err)
	}
	err = Command(exe, "test", "nope").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("unknown built-in: %v, want exit status 2", err)
	}
}

func TestPolicyDelay(t *testing.T) {
	p := Policy{BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}
	for n, want := range []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second} {
		if got := p.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

// proc is a test plugin process; it answers pings unless hung.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	hung atomic.Bool
}

var _ Pinger = (*proc)(nil)

func (p *proc) Ping(ctx context.Context) error {
	if p.hung.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (p *proc) Pid() int { return p.cmd.Process.Pid }

func (p *proc) Done() <-chan struct{} { return p.done }
func (p *proc) Err() error            { <-p.done; return p.err }
func (p *proc) Stop(ctx context.Context) {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-ctx.Done():
	}
}

// harness supervises test plugin name and records what the supervisor did.
type harness struct {
	sup     *Supervisor
	metrics *Metrics

	mu       sync.Mutex
	procs    []*proc
	crashed  int
	retired  int
	failed   bool
	onRetire func(*proc)
}

func newHarness(t *testing.T, name string, pol Policy) *harness {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{metrics: NewMetrics()}
	h.sup = New(Config{What: "test plugin", Kind: "test", Name: name, Metrics: h.metrics, Policy: func() Policy { return pol },
		Launch: func() (Process, error) {
			cmd := Command(exe, "test", name)
			Tie(cmd)
			if err := cmd.Start(); err != nil {
				return nil, err
			}
			p := &proc{cmd: cmd, done: make(chan struct{})}
			go func() { p.err = cmd.Wait(); close(p.done) }()
			h.mu.Lock()
			h.procs = append(h.procs, p)
			h.mu.Unlock()
			return p, nil
		},
		Crashed: func(Process, error) { h.mu.Lock(); h.crashed++; h.mu.Unlock() },
		Retire: func(p Process) {
			h.mu.Lock()
			h.retired++
			f := h.onRetire
			h.mu.Unlock()
			if f != nil {
				f(p.(*proc))
			}
		},
		Failed: func() { h.mu.Lock(); h.failed = true; h.mu.Unlock() },
	})
	t.Cleanup(func() { h.sup.Stop(context.Background()) })
	return h
}

func (h *harness) launches() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.procs)
}

func waitStats(t *testing.T, s *Supervisor, want string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s, have %+v", want, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSupervisorRestartsKilledProcess(t *testing.T) {
	h := newHarness(t, "sleep", Policy{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Window: time.Minute})
	h.sup.Go(nil)
	waitStats(t, h.sup, "running", func(s Stats) bool { return s.State == Running })
	first := h.procs[0]
	if err := syscall.Kill(first.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, h.sup, "restarted", func(s Stats) bool { return s.State == Running && h.launches() == 2 })
	if st.RecentCrashes != 1 || !strings.Contains(st.LastError, "killed") {
		t.Fatalf("stats after a kill -9: %+v", st)
	}
	h.mu.Lock()
	crashed := h.crashed
	h.mu.Unlock()
	if crashed != 1 {
		t.Fatalf("Crashed told %d times, want 1", crashed)
	}
	h.sup.Stop(context.Background())
	if st := h.sup.Stats(); st.State != Stopped || h.retired != 1 || h.launches() != 2 {
		t.Fatalf("after Stop: %+v, retired %d, launches %d", st, h.retired, h.launches())
	}
	select {
	case <-h.procs[1].done:
	default:
		t.Fatal("Stop left the process running")
	}
}

func TestSupervisorFailsAfterRepeatedCrashes(t *testing.T) {
	h := newHarness(t, "exit", Policy{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxCrashes: 3, Window: time.Minute})
	h.sup.Go(nil)
	st := waitStats(t, h.sup, "failed", func(s Stats) bool { return s.State == Failed })
	if st.RecentCrashes != 3 || h.launches() != 3 || !strings.Contains(st.LastError, "exit status 3") {
		t.Fatalf("stats %+v after %d launches", st, h.launches())
	}
	if got := h.sup.State(); got != Failed {
		t.Fatalf("State %s, Stats says %s", got, st.State)
	}
	h.mu.Lock()
	failed := h.failed
	h.mu.Unlock()
	if !failed {
		t.Fatal("Failed not told")
	}
	h.sup.Stop(context.Background()) // returns: nothing runs
	if h.launches() != 3 {
		t.Fatalf("%d launches after failing", h.launches())
	}
}

// A process that dies while the gateway stops (say, from a signal to the whole group)
// is not restarted and not reported as a crash.
func TestSupervisorDoesNotRestartWhileStopping(t *testing.T) {
	h := newHarness(t, "sleep", Policy{BackoffMax: time.Millisecond, Window: time.Minute})
	h.onRetire = func(p *proc) {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	first, err := h.sup.Launch()
	if err != nil {
		t.Fatal(err)
	}
	h.sup.Go(first)
	h.sup.Stop(context.Background())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.crashed != 0 || len(h.procs) != 1 || h.retired != 1 || h.sup.Stats().State != Stopped {
		t.Fatalf("crashed %d, launches %d, retired %d, state %s", h.crashed, len(h.procs), h.retired, h.sup.Stats().State)
	}
}

func TestStopWithoutGo(t *testing.T) {
	h := newHarness(t, "sleep", Policy{})
	h.sup.Stop(context.Background())
	if st := h.sup.Stats(); st.State != Stopped || h.launches() != 0 {
		t.Fatalf("state %s, launches %d", st.State, h.launches())
	}
}

func TestSocketDir(t *testing.T) {
	const prefix = "timgw-pluginhost-test-"
	stale, err := os.MkdirTemp("", prefix+"999999999-") // above any pid_max: nobody's
	if err != nil {
		t.Fatal(err)
	}
	live, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getppid()))
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	dir, remove, err := SocketDir("", prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale socket dir %s still there: %v", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("socket dir of a live process removed: %v", err)
	}
	if err := remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("private socket dir %s not removed: %v", dir, err)
	}
	kept := t.TempDir() + "/sock"
	dir, remove, err = SocketDir(kept, prefix, nil)
	if err != nil || dir != kept {
		t.Fatalf("SocketDir(%s) = %s, %v", kept, dir, err)
	}
	_ = remove()
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("configured socket dir removed: %v", err)
	}
}

// metric returns the value of counter name{kind="test",name=plugin}.
func (h *harness) metric(name, plugin string) float64 {
	vec := map[string]*prometheus.CounterVec{"timgw_plugin_hangs_total": h.metrics.hangs, "timgw_plugin_restarts_total": h.metrics.restarts}[name]
	var d dto.Metric
	_ = vec.WithLabelValues("test", plugin).Write(&d)
	return d.GetCounter().GetValue()
}

// wantState checks timgw_plugin_state: the series of plugin with value want, or none
// when absent.
func (h *harness) wantState(t *testing.T, plugin string, want float64, absent bool) {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	go func() { h.metrics.Collect(ch); close(ch) }()
	found := false
	for m := range ch {
		var d dto.Metric
		if m.Desc() != h.metrics.stateDsc || m.Write(&d) != nil || d.GetLabel()[1].GetValue() != plugin {
			continue
		}
		found = true
		if d.GetGauge().GetValue() != want {
			t.Errorf("timgw_plugin_state of %s = %v, want %v", plugin, d.GetGauge().GetValue(), want)
		}
	}
	if found == absent {
		t.Errorf("timgw_plugin_state of %s present: %v, want %v", plugin, found, !absent)
	}
}

// A process that stops answering pings is killed (its process group, SIGKILL), counted
// as a hang and a crash, and restarted.
func TestSupervisorKillsHungProcess(t *testing.T) {
	h := newHarness(t, "sleep", Policy{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Window: time.Minute,
		PingInterval: 20 * time.Millisecond, PingMisses: 3})
	h.sup.Go(nil)
	waitStats(t, h.sup, "running", func(s Stats) bool { return s.State == Running })
	h.wantState(t, "sleep", 1, false)
	h.mu.Lock()
	first := h.procs[0]
	h.mu.Unlock()
	first.hung.Store(true)
	st := waitStats(t, h.sup, "restarted after the hang", func(s Stats) bool { return s.State == Running && h.launches() == 2 })
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the hung process was not killed")
	}
	if ws, ok := first.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("hung process ended with %v, want SIGKILL", first.cmd.ProcessState)
	}
	if st.Hangs != 1 || st.RecentCrashes != 1 || !strings.Contains(st.LastError, "3 pings in a row unanswered") {
		t.Errorf("stats after a hang: %+v", st)
	}
	if got := h.metric("timgw_plugin_hangs_total", "sleep"); got != 1 {
		t.Errorf("timgw_plugin_hangs_total = %v, want 1", got)
	}
	if got := h.metric("timgw_plugin_restarts_total", "sleep"); got != 1 {
		t.Errorf("timgw_plugin_restarts_total = %v, want 1", got)
	}
	h.sup.Stop(context.Background())
	h.wantState(t, "sleep", 0, true)
}

// Once quiesced (the gateway got SIGTERM), a process that dies is not restarted.
func TestSupervisorQuiesceNoRestart(t *testing.T) {
	h := newHarness(t, "sleep", Policy{BackoffMax: time.Millisecond, Window: time.Minute})
	first, err := h.sup.Launch()
	if err != nil {
		t.Fatal(err)
	}
	h.sup.Go(first)
	h.sup.Quiesce()
	if err := syscall.Kill(first.(*proc).cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-first.Done()
	h.sup.Stop(context.Background())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.crashed != 0 || len(h.procs) != 1 || h.sup.Stats().State != Stopped {
		t.Fatalf("after quiesce and the process's death: crashed %d, launches %d, state %s", h.crashed, len(h.procs), h.sup.Stats().State)
	}
}

func TestStateValue(t *testing.T) {
	for st, want := range map[State]float64{Running: 1, Starting: 0, Restarting: 0, Failed: -1} {
		if got := stateValue(st); got != want {
			t.Errorf("stateValue(%s) = %v, want %v", st, got, want)
		}
	}
}

// Restart replaces the running process at once and resets the crash count; with
// nothing supervised it fails.
func TestSupervisorRestart(t *testing.T) {
	h := newHarness(t, "sleep", Policy{BackoffMin: time.Hour, BackoffMax: time.Hour, Window: time.Minute})
	if err := h.sup.Restart(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Restart before Go: %v, want ErrNotRunning", err)
	}
	h.sup.Go(nil)
	waitStats(t, h.sup, "running", func(s Stats) bool { return s.State == Running })
	h.mu.Lock()
	first := h.procs[0]
	h.mu.Unlock()
	if err := h.sup.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, h.sup, "restarted", func(s Stats) bool { return s.State == Running && h.launches() == 2 })
	<-first.done
	h.mu.Lock()
	retired, crashed := h.retired, h.crashed
	h.mu.Unlock()
	if retired != 1 || crashed != 0 || st.RecentCrashes != 0 {
		t.Errorf("after Restart: retired %d, crashed %d, stats %+v", retired, crashed, st)
	}
	if got := h.metric("timgw_plugin_restarts_total", "sleep"); got != 1 {
		t.Errorf("timgw_plugin_restarts_total = %v, want 1", got)
	}
	// A crash waits an hour of backoff; Restart skips it.
	h.mu.Lock()
	second := h.procs[1]
	h.mu.Unlock()
	_ = second.cmd.Process.Kill()
	waitStats(t, h.sup, "restarting", func(s Stats) bool { return s.State == Restarting })
	if err := h.sup.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitStats(t, h.sup, "running again", func(s Stats) bool { return s.State == Running && h.launches() == 3 })
	h.sup.Stop(context.Background())
	if err := h.sup.Restart(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Restart after Stop: %v, want ErrNotRunning", err)
	}
}
