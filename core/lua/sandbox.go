package lua

import (
	lua "github.com/yuin/gopher-lua"
)

// Isolation. Every script runs in a global environment of its own: a table holding the
// base functions and its own shallow copies of the library tables (string, table, math,
// tim), with _G pointing to itself. Nothing a script assigns, rawsets or patches there
// is seen by another script. The objects still shared by all scripts of a Lua state are
// reachable only through metatables, which are protected:
//
//   - strings index a library table that no script holds (the string metatable is a
//     table of its own whose __index is the capped string library), so patching
//     string.lower changes only the patching script's copy, not ("").lower elsewhere;
//   - getmetatable honours __metatable (gopher-lua's does not), and every metatable
//     the runtime creates (strings, tim.words and tim.regex objects, msg and ctx) has
//     one, so scripts cannot reach them;
//   - rawset refuses msg and ctx, whose fields are guarded by their metatable;
//   - setmetatable accepts tables only (gopher-lua's would replace the metatable of
//     every string or number of the state) and refuses protected metatables.

// lockedMeta is what getmetatable returns for the runtime's metatables.
const lockedMeta = lua.LString("locked")

// libraries are the globals that are tables copied into each script's environment.
var libraries = []string{lua.StringLibName, lua.TabLibName, lua.MathLibName, "tim"}

// harden replaces getmetatable and setmetatable and gives strings a protected
// metatable. It runs once per Lua state, after the libraries are opened and patched.
func (v *vm) harden() {
	L := v.L
	L.SetGlobal("getmetatable", L.NewFunction(safeGetMetatable))
	L.SetGlobal("setmetatable", L.NewFunction(safeSetMetatable))
	L.SetGlobal("rawset", L.NewFunction(v.safeRawSet))
	if str, ok := L.GetGlobal(lua.StringLibName).(*lua.LTable); ok {
		str.RawSetString("__index", lua.LNil) // it was its own metatable
		mt := L.CreateTable(0, 2)
		mt.RawSetString("__index", str)
		mt.RawSetString("__metatable", lockedMeta)
		L.SetMetatable(lua.LString(""), mt)
	}
	for _, name := range []string{matcherType, regexType} {
		if mt, ok := L.GetTypeMetatable(name).(*lua.LTable); ok {
			mt.RawSetString("__metatable", lockedMeta)
		}
	}
}

// lock marks a metatable the runtime created as protected.
func lock(mt *lua.LTable) *lua.LTable {
	mt.RawSetString("__metatable", lockedMeta)
	return mt
}

// scriptEnv builds the global environment of one script in v: the shared globals, with
// each library table replaced by a copy and _G by the environment itself.
func (v *vm) scriptEnv() *lua.LTable {
	L := v.L
	global := L.G.Global
	env := L.CreateTable(0, 64)
	global.ForEach(func(k, val lua.LValue) { env.RawSet(k, val) })
	for _, name := range libraries {
		if lib, ok := global.RawGetString(name).(*lua.LTable); ok {
			cp := L.CreateTable(0, 32)
			lib.ForEach(func(k, val lua.LValue) { cp.RawSet(k, val) })
			env.RawSetString(name, cp)
		}
	}
	env.RawSetString("_G", env)
	env.RawSetString(concatName, L.NewFunction(v.concat))
	return env
}

// safeGetMetatable is getmetatable with Lua 5.1's __metatable field honoured.
func safeGetMetatable(L *lua.LState) int {
	mt := L.GetMetatable(L.CheckAny(1))
	if t, ok := mt.(*lua.LTable); ok {
		if p := t.RawGetString("__metatable"); p != lua.LNil {
			L.Push(p)
			return 1
		}
	}
	L.Push(mt)
	return 1
}

// safeSetMetatable is setmetatable for tables only (as in Lua 5.1), refusing to change
// a protected metatable.
func safeSetMetatable(L *lua.LState) int {
	t := L.CheckTable(1)
	mt := L.Get(2)
	if mt != lua.LNil {
		mt = L.CheckTable(2)
	}
	if cur, ok := t.Metatable.(*lua.LTable); ok && cur.RawGetString("__metatable") != lua.LNil {
		L.RaiseError("cannot change a protected metatable")
	}
	t.Metatable = mt
	L.SetTop(1)
	return 1
}

// safeRawSet is rawset, refused on the message hook's msg and ctx tables (it would
// bypass the checks of their fields).
func (v *vm) safeRawSet(L *lua.LState) int {
	t := L.CheckTable(1)
	if t == v.msg || t == v.msgCtx {
		L.RaiseError("rawset: msg and ctx fields are set by assignment")
	}
	L.RawSet(t, L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}
