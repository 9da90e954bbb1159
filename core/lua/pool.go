package lua

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// errPoolBusy is returned by acquire when no VM frees up in time.
var errPoolBusy = errors.New("no Lua state free within the timeout")

// publish makes g the generation of new calls. VMs of older generations are replaced
// as they come back to the pool.
func (r *Runtime) publish(g *generation, pool int) {
	r.nextGen = max(r.nextGen, g.id)
	r.maxVMs.Store(int64(pool))
	old := r.gen.Swap(g)
	if old == nil || old.timeout != g.timeout {
		select {
		case <-r.tick:
		default:
		}
		r.tick <- watchdogTick(time.Duration(g.timeout))
	}
	r.metrics.reloaded()
}

// idleStack holds the free VMs. A mutex and a slice cost less than a channel on the
// hot path (two uncontended lock/unlock pairs per call); signal wakes callers waiting
// for a VM when the pool is exhausted.
type idleStack struct {
	mu      sync.Mutex
	vms     []*vm
	waiting int
	signal  chan struct{} // capacity 1
}

// pop takes the most recently released VM (its memory is the warmest), or nil.
func (s *idleStack) pop() *vm {
	s.mu.Lock()
	v := s.takeLocked()
	s.mu.Unlock()
	return v
}

// push frees v and wakes a waiter.
func (s *idleStack) push(v *vm) {
	s.mu.Lock()
	s.vms = append(s.vms, v)
	wake := s.waiting > 0
	s.mu.Unlock()
	if wake {
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
}

// acquire takes a VM of generation g from the pool, creating one while the pool is
// not full, else waiting for one until ctx is done or the timeout passed.
func (r *Runtime) acquire(ctx context.Context, g *generation) (*vm, error) {
	if v := r.idle.pop(); v != nil {
		return r.fresh(v, g)
	}
	if r.liveVMs.Add(1) <= r.maxVMs.Load() {
		v, err := r.newVM(g, true)
		if err != nil {
			r.liveVMs.Add(-1)
		}
		return v, err
	}
	r.liveVMs.Add(-1)
	t := time.NewTimer(time.Duration(g.timeout))
	defer t.Stop()
	s := &r.idle
	for {
		s.mu.Lock()
		if v := s.takeLocked(); v != nil {
			s.mu.Unlock()
			return r.fresh(v, g)
		}
		s.waiting++
		s.mu.Unlock()
		var err error
		select {
		case <-s.signal:
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
			err = errPoolBusy
		}
		s.mu.Lock()
		s.waiting--
		v := s.takeLocked()
		s.mu.Unlock()
		if v != nil {
			return r.fresh(v, g) // even when giving up: a VM came back just then
		}
		if err != nil {
			return nil, err
		}
	}
}

// takeLocked pops a VM (nil when none), passing the wake-up on to another waiter when
// VMs remain. Called with s.mu held.
func (s *idleStack) takeLocked() *vm {
	n := len(s.vms)
	if n == 0 {
		return nil
	}
	v := s.vms[n-1]
	s.vms[n-1] = nil
	s.vms = s.vms[:n-1]
	if n > 1 && s.waiting > 0 {
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
	return v
}

// fresh replaces a VM of an older generation by one of g.
func (r *Runtime) fresh(v *vm, g *generation) (*vm, error) {
	if v.gen == g {
		return v, nil
	}
	r.discard(v)
	nv, err := r.newVM(g, true)
	if err != nil {
		r.liveVMs.Add(-1)
	}
	return nv, err
}

// release returns a VM to the pool, or frees it when its generation is gone or the
// pool shrank.
func (r *Runtime) release(v *vm) {
	if v.gen != r.gen.Load() || r.liveVMs.Load() > r.maxVMs.Load() {
		r.liveVMs.Add(-1)
		r.discard(v)
		return
	}
	r.idle.push(v)
}

// discard unregisters and frees a VM.
func (r *Runtime) discard(v *vm) {
	r.vmsMu.Lock()
	delete(r.vms, v)
	r.vmsMu.Unlock()
	v.close()
}

// logEvery rate-limits the failure log of one script.
const logEvery = int64(time.Second)

// failed records a script failure (s nil: the hook point itself failed, e.g. no VM):
// metrics always, the log at most once a second per script and hook point.
func (r *Runtime) failed(p point, s *script, err error) {
	kind := "error"
	var te *timeoutError
	if errors.As(err, &te) || errors.Is(err, errPoolBusy) {
		kind = "timeout"
	}
	name := "-"
	if s != nil {
		name = s.name
	}
	r.metrics.failure(p, name, kind)
	if s != nil {
		now := r.clock() + 1 // never 0, the "never logged" value
		last := s.lastLog[p].Load()
		if last != 0 && now-last < logEvery || !s.lastLog[p].CompareAndSwap(last, now) {
			return
		}
	}
	msg, trace := errorText(err)
	attrs := []any{"hook", p.String(), "script", name, "kind", kind, "error", msg}
	if line := errorLine(msg, name); line > 0 {
		attrs = append(attrs, "line", line)
	}
	if trace != "" {
		attrs = append(attrs, "trace", trace)
	}
	r.log.Error("hooks: script failed", attrs...)
}

// errorText extracts the Lua message and stack trace of a script error.
func errorText(err error) (msg, trace string) {
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		msg = ae.Object.String()
		if te := (*timeoutError)(nil); errors.As(err, &te) {
			msg = te.prefix() + msg
		}
		return msg, ae.StackTrace
	}
	return err.Error(), ""
}

// errorLine finds the line in a Lua message "name:LINE: text".
func errorLine(msg, name string) int {
	i := strings.Index(msg, name+":")
	if i < 0 {
		return 0
	}
	rest := msg[i+len(name)+1:]
	j := strings.IndexByte(rest, ':')
	if j <= 0 {
		return 0
	}
	n, err := strconv.Atoi(rest[:j])
	if err != nil {
		return 0
	}
	return n
}

// recovered turns a panic escaping a call into an error and throws the VM away: its
// state is unknown.
func (r *Runtime) recovered(p point, v *vm, pv any) {
	r.failed(p, nil, fmt.Errorf("panic in %s hook: %v", p, pv))
	if v != nil {
		r.liveVMs.Add(-1)
		r.discard(v)
	}
}
