package lua

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

// vm is one sandboxed Lua state with the scripts of one generation loaded. A vm is
// used by one goroutine at a time (it is taken from and returned to the pool).
type vm struct {
	rt  *Runtime
	gen *generation
	L   *lua.LState
	fns [numPoints][]*lua.LFunction // aligned with gen.chains

	// Deadline of the running script: ns on rt.clock, 0 when idle, -1 once the
	// watchdog fired (then stop is set until rearm).
	deadline atomic.Int64
	mu       sync.Mutex  // orders the watchdog's stop against rearm
	stop     atomic.Bool // set by the watchdog: the running script must stop
	ctx      vmContext

	cur      *script // the script running, for tim.log
	curPoint point

	// Tables reused by every call (one allocation per VM, not per call).
	msg, msgCtx *lua.LTable
	reqs        [numPoints]*lua.LTable // one per point: no field leaks between points
	chat        *packet.Chat           // the message of the running message call
	msgReq      *hook.MessageRequest   // the running message call, for ctx
	ctxTouched  bool                   // ctx fields were materialized in this call
	touched     uint8                  // lazy msg fields read or written in this call
	guardFired  string                 // ctx.guard of the running message script
	sends       []packet.Chat          // tim.send of this message call
	also        []string               // tim.deliver_to of this message call
	evWrite     *lua.LFunction         // __newindex of the event views (event.go)

	spent                int            // string bytes the running call built (limits.go)
	curFn                *lua.LFunction // the hook function running, for traces
	trace                string         // trace of the last error (trace.go)
	traceFn, passFn      *lua.LFunction // message handlers (trace.go)
	declared             []*varSchema   // tim.vars calls of the script loading (checker only)
	guarding             **guard        // tim.guard of the script loading (checker only)
	libFormat, libConcat lua.LGFunction // gopher-lua's string.format and table.concat
}

// sandboxed are the globals removed from the base library: file access, code loading,
// environment tricks, the collector, output.
var sandboxed = []string{
	"dofile", "loadfile", "load", "loadstring", "require", "module", "getfenv", "setfenv",
	"collectgarbage", "newproxy", "print", "_printregs",
}

// newVM creates a sandboxed state for g, with the scripts of g loaded when
// withScripts. The VM is registered with the watchdog until discard.
func (r *Runtime) newVM(g *generation, withScripts bool) (*vm, error) {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       200,
		RegistrySize:        1024,
		RegistryMaxSize:     64 * 1024,
		MinimizeStackMemory: true,
	})
	v := &vm{rt: r, gen: g, L: L}
	v.ctx.v = v
	if err := v.openLibs(); err != nil {
		L.Close()
		return nil, err
	}
	L.SetContext(&v.ctx) // for good: the deadline is armed per call, not per context
	v.msg, v.msgCtx = L.NewTable(), L.NewTable()
	for p := range v.reqs {
		v.reqs[p] = L.NewTable()
	}
	mt := lock(L.NewTable())
	mt.RawSetString("__index", L.NewFunction(v.msgIndex))
	mt.RawSetString("__newindex", L.NewFunction(v.msgNewIndex))
	L.SetMetatable(v.msg, mt)
	cmt := lock(L.NewTable())
	cmt.RawSetString("__index", L.NewFunction(v.ctxIndex))
	L.SetMetatable(v.msgCtx, cmt)
	r.vmsMu.Lock()
	r.vms[v] = struct{}{}
	r.vmsMu.Unlock()
	if withScripts {
		if err := v.loadAllSafe(); err != nil {
			r.discard(v)
			return nil, err
		}
	}
	return v, nil
}

// loadAllSafe is loadAll turning a panic (a bug, not a script error: those are
// caught by pcall) into an error, so that none reaches the gateway.
func (v *vm) loadAllSafe() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("load scripts into a Lua state: %v", p)
		}
	}()
	v.loadAll()
	return nil
}

// openLibs opens base, table, string and math, removes the unsafe parts and adds tim.
func (v *vm) openLibs() (err error) {
	L := v.L
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("open Lua libraries: %v", p)
		}
	}()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range sandboxed {
		L.SetGlobal(name, lua.LNil)
	}
	v.traceFn, v.passFn = L.NewFunction(v.traceback), L.NewFunction(passError)
	L.SetGlobal("pcall", L.NewFunction(v.scriptPCall))
	L.SetGlobal("xpcall", L.NewFunction(v.scriptXPCall))
	v.capLibs()
	L.SetGlobal("tim", v.timModule())
	v.harden()
	return nil
}

// loadAll loads every script of the generation and resolves the chains.
func (v *vm) loadAll() {
	g := v.gen
	hooks := make([][numPoints]*lua.LFunction, len(g.scripts))
	for i, s := range g.scripts {
		h, _, err := v.instantiate(s)
		if err != nil {
			// It loaded in the checker: it depends on something that changed since.
			v.rt.failed(pLoad, s, err)
			continue
		}
		hooks[i] = h
	}
	for p := point(0); p < numPoints; p++ {
		v.fns[p] = make([]*lua.LFunction, len(g.chains[p]))
		for k, i := range g.chains[p] {
			v.fns[p][k] = hooks[i][p] // nil when the load failed: the call fails
		}
	}
}

// loadScript runs a script's chunk and returns which hooks it defines, the vars schemas
// it declared and its guard (tim.guard; nil when none).
func (v *vm) loadScript(s *script) (uint8, []*varSchema, *guard, error) {
	var gd *guard
	v.declared, v.guarding = []*varSchema{}, &gd
	prev := v.cur
	v.cur = s // tim.guard names the script
	_, mask, err := v.instantiate(s)
	declared := v.declared
	v.declared, v.guarding, v.cur = nil, nil, prev
	return mask, declared, gd, err
}

// instantiate runs the chunk of s in its own environment (sandbox.go) and reads the
// table it returns.
func (v *vm) instantiate(s *script) (hooks [numPoints]*lua.LFunction, mask uint8, err error) {
	L := v.L
	fn := L.NewFunctionFromProto(s.proto)
	fn.Env = v.scriptEnv()
	L.Push(fn)
	if err := v.pcall(s, pLoad, 0, 1, v.gen.loadTimeout); err != nil {
		return hooks, 0, fmt.Errorf("load script %s: %w", s.name, err)
	}
	ret := L.Get(-1)
	L.Pop(1)
	tbl, ok := ret.(*lua.LTable)
	if !ok {
		return hooks, 0, fmt.Errorf("load script %s: it returned a %s; it must return a table of hook functions (connect, auth, authenticated, message, join, disconnect, event)", s.name, ret.Type())
	}
	for p := point(0); p < numPoints; p++ {
		switch f := tbl.RawGetString(p.String()).(type) {
		case *lua.LFunction:
			hooks[p] = f
			mask |= 1 << p
		case *lua.LNilType:
		default:
			return hooks, 0, fmt.Errorf("load script %s: %s is a %s, want a function", s.name, p, f.Type())
		}
	}
	if mask == 0 {
		return hooks, 0, fmt.Errorf("load script %s: it defines no hook (return a table with connect, auth, authenticated, message, join, disconnect or event)", s.name)
	}
	return hooks, mask, nil
}

// pcall calls the function below nargs arguments on the stack, leaving nret results,
// under a deadline of timeout ns. A script stopped by the deadline gives a
// *timeoutError.
func (v *vm) pcall(s *script, p point, nargs, nret int, timeout int64) error {
	v.cur, v.curPoint, v.spent = s, p, 0
	d := v.rt.deadline(timeout)
	v.deadline.Store(d)
	v.trace = ""
	err := v.L.PCall(nargs, nret, v.traceFn)
	if ae, ok := err.(*lua.ApiError); ok && ae.StackTrace == "" {
		ae.StackTrace = v.trace
	}
	if !v.deadline.CompareAndSwap(d, 0) {
		v.rearm()
		if err != nil {
			err = &timeoutError{err: err, limit: time.Duration(timeout)}
		}
	}
	v.cur, v.curFn = nil, nil
	return err
}

// close frees the Lua state.
func (v *vm) close() { v.L.Close() }

// timeoutError is a script stopped by its deadline.
type timeoutError struct {
	err   error
	limit time.Duration
}

func (e *timeoutError) Error() string { return e.prefix() + e.err.Error() }

func (e *timeoutError) prefix() string {
	return fmt.Sprintf("timeout: stopped after hooks.timeout (%v): ", e.limit)
}
func (e *timeoutError) Unwrap() error { return e.err }
