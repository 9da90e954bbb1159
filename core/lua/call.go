package lua

import (
	"context"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/packet"
)

// results are the three values a hook function may return: a decision string and two
// arguments (reason, code / user table).
type results [3]lua.LValue

// run calls the k-th script of p's chain with one or two arguments.
func (v *vm) run(ctx context.Context, p point, k int, a1, a2 lua.LValue) (res results, err error) {
	s := v.gen.scripts[v.gen.chains[p][k]]
	fn := v.fns[p][k]
	if fn == nil {
		return res, fmt.Errorf("script %s is not loaded in this Lua state", s.name)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%s hook not run: %w", p, err)
	}
	v.rt.metrics.called(p, s.name)
	L := v.L
	v.curFn = fn
	L.Push(fn)
	L.Push(a1)
	n := 1
	if a2 != nil {
		L.Push(a2)
		n = 2
	}
	if err := v.pcall(s, p, n, 3, v.gen.timeout); err != nil {
		return res, err
	}
	res[0], res[1], res[2] = L.Get(-3), L.Get(-2), L.Get(-1)
	L.Pop(3)
	return res, nil
}

// script returns the k-th script of p's chain.
func (v *vm) script(p point, k int) *script { return v.gen.scripts[v.gen.chains[p][k]] }

// decision reads a hook function's first result: nil is "" (no opinion).
func decision(v lua.LValue) (string, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return "", nil
	case lua.LString:
		return string(v), nil
	}
	return "", fmt.Errorf("hook returned a %s; want nil or a decision string", v.Type())
}

// text reads an optional string result.
func text(v lua.LValue, def string) string {
	if s := lua.LVAsString(v); s != "" {
		return s
	}
	return def
}

// status reads an optional status-code result.
func status(v lua.LValue, def packet.Status) packet.Status {
	if n, ok := v.(lua.LNumber); ok && n > 0 {
		return packet.Status(n)
	}
	return def
}

// call is the frame around every entry point (Connect, Auth, Message, Join, Disconnect):
// it takes a Lua state of generation g for hook point p, runs body on it and gives the state
// back. When no state is free in time, or body panics (the state is then discarded, never
// reused), the reply is fail(). Either way, when metrics are on, the call's latency and
// the decision of its reply (decided, an index into decisionNames[p]) are recorded.
func call[R any](ctx context.Context, r *Runtime, g *generation, p point, fail func() R, decided func(R) int, body func(*vm) R) (rep R) {
	start := r.begin()
	v, err := r.acquire(ctx, g)
	if err != nil {
		r.failed(p, nil, err)
		rep = fail()
		r.end(p, start, decided(rep))
		return rep
	}
	defer func() {
		if pv := recover(); pv != nil {
			r.recovered(p, v, pv)
			rep = fail()
		} else {
			v.chat, v.msgReq = nil, nil // a pooled state keeps no request alive
			r.release(v)
		}
		r.end(p, start, decided(rep))
	}()
	return body(v)
}

// begin returns the time a call starts, when metrics are on.
func (r *Runtime) begin() time.Time {
	if r.metrics.enabled() {
		return time.Now()
	}
	return time.Time{}
}

// end records the latency and decision (an index into decisionNames) of a call.
func (r *Runtime) end(p point, start time.Time, d int) {
	if r.metrics.enabled() {
		r.metrics.observe(p, time.Since(start).Seconds(), d)
	}
}
