package lua

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Errors and the deadline. gopher-lua builds a stack trace for every error caught by a
// protected call, with one line per tail call the failing frame made: after a runaway
// tail recursion (`local function f(n) return f(n + 1) end`) that is millions of
// lines, built after the deadline, which made such calls run 3 to 4 times their
// timeout. So every call the runtime makes passes a message handler (traceback) that
// records a short trace instead, and the scripts' pcall and xpcall do the same and,
// once the deadline passed, hand the timeout on instead of catching it.

// maxTraceFrames bounds the frames of a script error's trace.
const maxTraceFrames = 10

// traceback is the message handler of the runtime's calls into scripts: it records a
// short trace in v.trace naming the hook function, and returns the error unchanged.
func (v *vm) traceback(L *lua.LState) int {
	var b strings.Builder
	b.WriteString("stack traceback:")
	var prevFn lua.LValue
	prevLine := -1
	for level := 1; level <= maxTraceFrames; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		fn, err := L.GetInfo("Slnf", dbg, lua.LNil)
		if err != nil || fn == prevFn && dbg.CurrentLine == prevLine {
			break // past the bottom: gopher-lua returns the first frame again
		}
		prevFn, prevLine = fn, dbg.CurrentLine
		b.WriteString("\n\t")
		if dbg.What == "G" {
			fmt.Fprintf(&b, "[G]: in function '%s'", dbg.Name)
			continue
		}
		fmt.Fprintf(&b, "%s:%d: in %s", dbg.Source, dbg.CurrentLine, v.funcName(fn, dbg))
		if dbg.What == "tail" {
			b.WriteString(" (after tail calls)")
		}
	}
	v.trace = b.String()
	L.Push(L.Get(1))
	return 1
}

// funcName names a function of a trace: the hook running, the script's chunk, or the
// function's name or definition line.
func (v *vm) funcName(fn lua.LValue, dbg *lua.Debug) string {
	switch {
	case fn == v.curFn && v.curFn != nil:
		return fmt.Sprintf("%s hook", v.curPoint)
	case dbg.LineDefined == 0:
		return "main chunk"
	case dbg.Name == "main chunk": // gopher-lua's name for the bottom frame
		return fmt.Sprintf("function <%s:%d>", dbg.Source, dbg.LineDefined)
	case dbg.Name != "" && dbg.Name[0] != '(' && dbg.Name[0] != '<':
		return fmt.Sprintf("function '%s'", dbg.Name)
	}
	return fmt.Sprintf("function <%s:%d>", dbg.Source, dbg.LineDefined)
}

// passError is the message handler of the scripts' pcall and xpcall: no trace.
func passError(L *lua.LState) int {
	L.Push(L.Get(1))
	return 1
}

// scriptPCall is pcall(f, ...) without gopher-lua's trace, and unable to catch the
// deadline: a script whose time is up stops.
func (v *vm) scriptPCall(L *lua.LState) int {
	L.CheckAny(1)
	return v.protect(L, L.GetTop()-1, nil)
}

// scriptXPCall is xpcall(f, handler): handler gets the error object (not once the
// deadline passed: the timeout goes on).
func (v *vm) scriptXPCall(L *lua.LState) int {
	L.CheckAny(1)
	h := L.CheckFunction(2)
	L.SetTop(1)
	return v.protect(L, 0, h)
}

// protect calls the function below nargs arguments in protected mode and returns
// true and its results, or false and the error (through handler h when set).
func (v *vm) protect(L *lua.LState, nargs int, h *lua.LFunction) int {
	base := L.GetTop() - nargs
	err := L.PCall(nargs, lua.MultRet, v.passFn)
	if err == nil {
		L.Insert(lua.LTrue, base)
		return L.GetTop() - base + 1
	}
	obj := errorObject(err)
	if v.stop.Load() {
		L.Error(obj, 0) // the deadline passed: not the script's to catch
	}
	if h != nil {
		L.Push(h)
		L.Push(obj)
		if herr := L.PCall(1, 1, v.passFn); herr != nil {
			obj = errorObject(herr)
		} else {
			obj = L.Get(-1)
			L.Pop(1)
		}
	}
	L.Push(lua.LFalse)
	L.Push(obj)
	return 2
}

// errorObject is the Lua value of an error.
func errorObject(err error) lua.LValue {
	if ae, ok := err.(*lua.ApiError); ok {
		return ae.Object
	}
	return lua.LString(err.Error())
}
