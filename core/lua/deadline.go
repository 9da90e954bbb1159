package lua

import (
	"context"
	"time"
)

// Deadlines. A context.WithTimeout per call costs 1-1.5 us and 4 allocations
// (BenchmarkContextWithTimeout); instead each VM keeps one context for good. Its Done is
// nil (never ready) while the running script is within its deadline, and a closed channel
// once the watchdog goroutine saw the deadline pass. gopher-lua polls Done before every
// instruction, and a nil channel is the cheapest to poll. Arming a deadline is a clock
// read and an atomic store.

// vmContext is the context a VM's Lua state runs under. gopher-lua polls Done between
// instructions.
type vmContext struct{ v *vm }

var _ context.Context = (*vmContext)(nil)

// Deadline reports none: the watchdog owns the deadline.
func (c *vmContext) Deadline() (time.Time, bool) { return time.Time{}, false }

// closedChan is the Done of a VM whose script must stop.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done is closed when the running script's deadline passed, nil otherwise.
func (c *vmContext) Done() <-chan struct{} {
	if c.v.stop.Load() {
		return closedChan
	}
	return nil
}

// Err is context.DeadlineExceeded once the deadline passed.
func (c *vmContext) Err() error {
	if c.v.stop.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

// Value holds nothing.
func (c *vmContext) Value(any) any { return nil }

// expire stops the VM's script if its deadline passed (watchdog goroutine).
func (v *vm) expire(now int64) {
	d := v.deadline.Load()
	if d <= 0 || now < d {
		return
	}
	v.mu.Lock()
	if v.deadline.CompareAndSwap(d, -1) {
		v.stop.Store(true)
	}
	v.mu.Unlock()
}

// rearm clears the stop after the watchdog fired (VM goroutine). The lock orders it
// after the watchdog's store.
func (v *vm) rearm() {
	v.mu.Lock()
	v.stop.Store(false)
	v.deadline.Store(0)
	v.mu.Unlock()
}

// watchdogTick is how often deadlines are checked for a given timeout: a runaway
// script runs at most timeout + tick.
func watchdogTick(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return 20 * time.Millisecond
	}
	return min(max(timeout/5, time.Millisecond), 20*time.Millisecond)
}

// counterSweep is how often expired tim.incr counters are removed.
const counterSweep = 10 * time.Second

// watchdog stops runaway scripts and sweeps counters until Close.
func (r *Runtime) watchdog() {
	defer r.wg.Done()
	t := time.NewTicker(watchdogTick(time.Duration(r.gen.Load().timeout)))
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-r.closed:
			return
		case d := <-r.tick:
			t.Reset(d)
		case now := <-t.C:
			c := r.tickClock()
			r.vmsMu.Lock()
			for v := range r.vms {
				v.expire(c)
			}
			r.vmsMu.Unlock()
			if now.Sub(lastSweep) >= counterSweep {
				r.counters.Sweep()
				r.kv.Sweep()
				lastSweep = now
			}
		}
	}
}
