// Package lua runs timgw's hooks (core/hook) in Lua, on github.com/yuin/gopher-lua.
//
// A Runtime loads the scripts named by the hooks configuration from a directory,
// compiles each once, and runs them in a pool of sandboxed Lua states: only the base,
// table, string and math libraries, without file, module or code loading, plus the
// `tim` module (see scripts/README.md). Each script runs in its own global environment
// with its own copies of the library tables, and the shared metatables are protected
// (sandbox.go). Strings a script builds are bounded per result and per call (limits.go;
// the `..` operator is compiled into a bounded call, rewrite.go), and errors carry a
// short trace naming the hook (trace.go).
//
// A script is a Lua chunk that returns a table of hook functions:
//
//	local M = {}
//	function M.message(msg, ctx)
//	  if msg.content:find("spam", 1, true) then return "reject", "no spam" end
//	end
//	return M
//
// The keys are the hook points (connect, auth, authenticated, message, join, disconnect, event). Several
// scripts may define the same point; they run in the configured order until one
// decides. Every script call has a deadline (hooks.timeout); a script that fails (Lua
// error, timeout, bad return value) is logged with its name and line, counted in the
// metrics, and handled by its hook point's policy: fail_open skips it, fail_closed
// refuses the request.
//
// The directory is watched: a created, edited or removed script takes effect for calls
// starting about 150 ms later. A version that fails to compile or load is rejected and
// the previous one stays active; Status reports the error. Scripts declare the vars
// they read with tim.vars (vars.go); Reload refuses vars that do not fit.
package lua
