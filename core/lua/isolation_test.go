package lua

import (
	"context"
	"testing"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// victim is a script whose message hook uses the libraries a tampering script could
// patch; its result is the same whatever another script did.
const victim = `
local m = tim.words({"bad"})
local re = tim.regex("b+")
return {message = function(msg)
  local parts = {
    string.lower("AB"), ("CD"):lower(), tostring(tim.incr("victim", 1, 60) >= 1),
    tostring(math.floor(2.5)), type(pairs), string.format("%d", 7), (m:mask("a bad")),
    re:replace("abba", "-"), tostring(#msg.content), tostring(getmetatable("") ~= nil),
  }
  msg.content = table.concat(parts, ",")
end}`

const victimWant = "ab,cd,true,2,function,7,a ***,a-a,1,true"

func TestScriptsCannotTamperWithEachOther(t *testing.T) {
	for _, tt := range []struct{ name, tamper string }{
		{"tim.incr", `tim.incr = function() return 0 end`},
		{"string.lower", `string.lower = function() return "X" end`},
		{"string metatable __index", `getmetatable("").__index.lower = function() return "X" end`},
		{"string metatable replaced", `setmetatable("", {__index = {lower = function() return "X" end}})`},
		{"rawset string", `rawset(string, "lower", function() return "X" end)`},
		{"rawset _G", `rawset(_G, "pairs", nil); rawset(_G, "tostring", function() return "X" end)`},
		{"_G.string", `_G.string = {lower = function() return "X" end, format = string.format}`},
		{"_G.tim", `_G.tim = {incr = function() return 0 end}`},
		{"table.concat", `table.concat = function() return "X" end`},
		{"math.floor", `math.floor = function() return 99 end`},
		{"metatable on a library", `setmetatable(string, {__index = function() return function() return "X" end end}); string.lower = nil`},
		{"metatable on tim", `setmetatable(tim, {__newindex = function() end}); tim.incr = nil`},
		{"matcher methods", `getmetatable(tim.words({"x"})).__index.mask = function() return "X", 0 end`},
		{"regex methods", `getmetatable(tim.regex("x")).__index.replace = function() return "X" end`},
		{"msg metatable", `getmetatable(msg or {}).__index = function() return "X" end`},
		{"package.loaded", `package.loaded.string.lower = function() return "X" end`},
		{"global function", `pairs = nil; tostring = nil; getmetatable = nil`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			attempt := `local ok, err = pcall(function() ` + tt.tamper + ` end)`
			env := newEnv(t, map[string]string{
				// a.lua tampers when it loads and on every message, then b.lua runs.
				"a.lua": attempt + "\nreturn {message = function(msg) " + attempt + " end}",
				"b.lua": victim,
			}, func(c *config.Hooks) { c.PoolSize = 1 })
			for i := 0; i < 2; i++ {
				if _, c := env.send("u", "v", "x"); c.Content != victimWant {
					t.Fatalf("after %s in another script: %q, want %q", tt.tamper, c.Content, victimWant)
				}
			}
		})
	}
}

func TestScriptSeesItsOwnChanges(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `
string.shout = function(s) return s:upper() .. "!" end
return {message = function(msg) msg.content = string.shout(msg.content) .. tostring(_G.string == string) end}`}, nil)
	if _, c := env.send("u", "v", "hi"); c.Content != "HI!true" {
		t.Errorf("own library change: %q", c.Content)
	}
}

func TestScriptCannotForgeSenderForNext(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": `return {message = function(msg) msg.from = "admin"; msg.msgType = 9; msg.id = "forged"; pcall(rawset, msg, "createTime", 1) end}`,
		"b.lua": `return {message = function(msg)
  msg.content = msg.from .. "," .. msg.msgType .. "," .. msg.id .. "," .. tostring(msg.createTime == 1)
end}`,
	}, nil)
	c := chat("alice", "bob", "x")
	c.ID, c.MsgType, c.CreateTime = "m1", 0, 5
	env.rt.Message(context.Background(), &hook.MessageRequest{Sender: "alice", Chat: c})
	if c.Content != "alice,0,m1,false" || c.From != "alice" {
		t.Errorf("the next script saw %q (from %q), want the real sender and fields", c.Content, c.From)
	}
}

func TestScriptCannotForgeRequestForNext(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": `return {
  auth = function(req) req.userId = "admin"; req.token = "forged" end,
  authenticated = function(req) req.userId = "admin"; req.claims.role = "admin" end,
  join = function(j) j.user = "admin" end,
}`,
		"b.lua": `return {
  auth = function(req) return "reject", req.userId .. "," .. req.token end,
  authenticated = function(req) return "reject", req.userId .. "," .. req.claims.role end,
  join = function(j) return "deny", j.user end,
}`,
	}, nil)
	ctx := context.Background()
	if rep := env.rt.Auth(ctx, &hook.AuthRequest{Source: hook.SourceLogin, UserID: "bob", Token: "t"}); rep.Message != "bob,t" {
		t.Errorf("auth: the next script saw %q", rep.Message)
	}
	if rep := env.rt.Authenticated(ctx, &hook.AuthenticatedRequest{Source: hook.SourceLogin, UserID: "bob", Claims: map[string]any{"role": "user"}}); rep.Message != "bob,user" {
		t.Errorf("authenticated: the next script saw %q", rep.Message)
	}
	if rep := env.rt.Join(ctx, &hook.JoinRequest{User: "bob", Group: "g"}); rep.Reason != "bob" {
		t.Errorf("join: the next script saw %q", rep.Reason)
	}
}
