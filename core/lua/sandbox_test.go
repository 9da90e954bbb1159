package lua

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

func TestTimeoutStopsRunawayScript(t *testing.T) {
	for _, tt := range []struct {
		name, body string
	}{
		{"while true", `while true do end`},
		{"pcall loop", `while true do pcall(function() while true do end end) end`},
		{"recursion in pcall", `local function f() return pcall(f) end; while true do f() end`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, map[string]string{"loop.lua": `
return {message = function(msg)
  if msg.content == "loop" then ` + tt.body + ` end
  msg.content = "ok:" .. msg.content
end}`}, func(c *config.Hooks) {
				c.PoolSize = 1 // the next call reuses the state that was stopped
				c.Timeout = 100 * time.Millisecond
				c.Message.Policy = config.PolicyFailClosed
			})
			start := time.Now()
			rep, _ := env.send("u", "v", "loop")
			took := time.Since(start)
			if rep.Action != hook.MessageReject || rep.Code != packet.StatusRejected {
				t.Fatalf("runaway script: %+v", rep)
			}
			if took > time.Second {
				t.Errorf("stopped after %v, timeout 100ms", took)
			}
			if !strings.Contains(env.logs.String(), "kind=timeout") {
				t.Errorf("timeout not logged:\n%s", env.logs)
			}
			for i := 0; i < 3; i++ {
				rep, c := env.send("u", "v", "after")
				if rep.Action != hook.MessageRewrite || c.Content != "ok:after" {
					t.Fatalf("state not reusable after a timeout: %+v %q", rep, c.Content)
				}
			}
			if n := env.rt.liveVMs.Load(); n != 1 {
				t.Errorf("%d live states, want the same single one", n)
			}
		})
	}
}

func TestTimeoutFailOpen(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": `return {message = function(msg) while true do end end}`,
		"b.lua": `return {message = function(msg) msg.content = "b ran" end}`,
	}, func(c *config.Hooks) { c.Timeout = 100 * time.Millisecond })
	rep, c := env.send("u", "v", "x")
	if rep.Action != hook.MessageRewrite || c.Content != "b ran" {
		t.Fatalf("fail_open timeout: %+v %q", rep, c.Content)
	}
}

func TestRunawayChunkRejectedAtLoad(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"loop.lua": `while true do end`})
	cfg := testCfg(dir)
	cfg.Timeout = 10 * time.Millisecond
	start := time.Now()
	_, err := New(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "loop.lua") {
		t.Fatalf("New: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("load of a runaway chunk took %v", time.Since(start))
	}
}

func TestSandbox(t *testing.T) {
	env := newEnv(t, map[string]string{"probe.lua": `
local probes = {
  os = function() return os.time() end,
  io = function() return io.open("/etc/passwd") end,
  require = function() return require("os") end,
  load = function() return load("return 1")() end,
  loadstring = function() return loadstring("return 1")() end,
  dofile = function() return dofile("/etc/passwd") end,
  loadfile = function() return loadfile("/etc/passwd") end,
  module = function() return module("x") end,
  setfenv = function() return setfenv(1, {}) end,
  getfenv = function() return getfenv(1) end,
  collectgarbage = function() return collectgarbage() end,
  print = function() print("x") end,
  debug = function() return debug.traceback() end,
  package = function() return package.path end,
  coroutine = function() return coroutine.create(function() end) end,
  channel = function() return channel.make() end,
  dump = function() return string.dump(function() end) end,
  rep = function() return string.rep("x", 1e9) end,
}
return {message = function(msg)
  local f = probes[msg.content]
  local ok, err = pcall(f)
  if ok then return "reject", "allowed" end
  return "reject", tostring(err)
end}`}, nil)
	for _, name := range []string{"os", "io", "require", "load", "loadstring", "dofile", "loadfile", "module",
		"setfenv", "getfenv", "collectgarbage", "print", "debug", "package", "coroutine", "channel", "dump", "rep"} {
		rep, _ := env.send("u", "v", name)
		if rep.Reason == "allowed" {
			t.Errorf("%s is available in the sandbox", name)
		}
	}
	// What is there works.
	env2 := newEnv(t, map[string]string{"ok.lua": `
return {message = function(msg)
  msg.content = string.format("%s %d %s %s", msg.content:upper(), math.floor(2.5), table.concat({"a", "b"}, ","), tostring(type(tim)))
end}`}, nil)
	if _, c := env2.send("u", "v", "x"); c.Content != "X 2 a,b table" {
		t.Errorf("libraries: %q", c.Content)
	}
}

func TestScriptsHaveOwnGlobals(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": `counter = "a"; return {message = function(msg) msg.content = msg.content .. counter end}`,
		"b.lua": `counter = "b"; return {message = function(msg) msg.content = msg.content .. counter end}`,
	}, nil)
	if _, c := env.send("u", "v", ""); c.Content != "ab" {
		t.Errorf("globals leaked between scripts: %q", c.Content)
	}
}

func TestRequestTablesDoNotLeak(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `
return {
  auth = function(req) return nil end,
  join = function(j) if j.password ~= nil then return "deny", "password visible" end end,
}`}, func(c *config.Hooks) { c.PoolSize = 1 })
	ctx := context.Background()
	env.rt.Auth(ctx, &hook.AuthRequest{Source: hook.SourceLogin, UserID: "u", Password: "secret"})
	if rep := env.rt.Join(ctx, &hook.JoinRequest{User: "u", Group: "g"}); rep.Deny {
		t.Error("a join script saw the password of an earlier auth call")
	}
}

func TestNoScriptIsCheap(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `return {auth = function() end}`}, nil)
	c := chat("u", "v", "x")
	req := &hook.MessageRequest{Sender: "u", Chat: c}
	allocs := testing.AllocsPerRun(100, func() { env.rt.Message(context.Background(), req) })
	if allocs != 0 {
		t.Errorf("message with no script hooked allocates %v times", allocs)
	}
}
