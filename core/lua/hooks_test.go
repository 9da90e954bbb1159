package lua

import (
	"context"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

func TestConnectAndJoin(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": `
local M = {}
function M.connect(c)
  if c.addr:sub(1, 9) == "10.0.0.66" then return "deny", "banned address" end
  if c.protocol == "http" then return "allow" end
end
function M.join(j)
  if j.group == "secret" and j.user ~= "boss" then return "deny", "members only" end
end
return M`,
		"b.lua": `
return {
  connect = function(c) if c.protocol == "http" then return "deny", "unreachable" end end,
  join = function(j) if j.group == "closed" then return "deny" end end,
}`,
	}, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		addr, proto string
		deny        bool
		reason      string
	}{
		{"10.0.0.66:1234", "tcp", true, "banned address"},
		{"10.0.0.7:1234", "tcp", false, ""},
		{"10.0.0.7:1234", "http", false, ""}, // a.lua allows: b.lua does not run
	} {
		rep := env.rt.Connect(ctx, &hook.ConnectRequest{Addr: tt.addr, Protocol: tt.proto})
		if rep.Deny != tt.deny || rep.Reason != tt.reason {
			t.Errorf("connect %s %s: %+v", tt.addr, tt.proto, rep)
		}
	}
	for _, tt := range []struct {
		user, group string
		deny        bool
		reason      string
		script      string
	}{
		{"alice", "secret", true, "members only", "a.lua"},
		{"boss", "secret", false, "", ""},
		{"alice", "closed", true, "join refused", "b.lua"},
		{"alice", "open", false, "", ""},
	} {
		rep := env.rt.Join(ctx, &hook.JoinRequest{User: tt.user, Group: tt.group, Protocol: "ws"})
		if rep.Deny != tt.deny || rep.Reason != tt.reason || rep.Script != tt.script {
			t.Errorf("join %s %s: %+v", tt.user, tt.group, rep)
		}
	}
}

func TestAuthDecisions(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `
return {auth = function(req)
  if req.token == "pass" then return nil end
  if req.token == "id" then return "accept", "tok-user" end
  if req.token == "full" then return "accept", {userId = "u1", nick = "U", avatar = "a.png", groups = {"g1", "g2"}} end
  if req.token == "keep" then return "accept" end
  if req.token == "bad" then return "reject", "bad token" end
  if req.token == "code" then return "reject", "forbidden", tim.FORBIDDEN end
  if req.token == "noid" then return "accept", {nick = "x"} end
  if req.token == "weird" then return 42 end
end}`}, nil)
	tests := []struct {
		token, user, source string
		want                hook.AuthReply
	}{
		{"pass", "", hook.SourceAuth, hook.AuthReply{}},
		{"id", "", hook.SourceAuth, hook.AuthReply{Decision: hook.AuthAccept, UserID: "tok-user", Script: "a.lua"}},
		{"full", "", hook.SourceLogin, hook.AuthReply{Decision: hook.AuthAccept, UserID: "u1", Nick: "U", Avatar: "a.png", Groups: []string{"g1", "g2"}, Script: "a.lua"}},
		{"keep", "claimed", hook.SourceLogin, hook.AuthReply{Decision: hook.AuthAccept, UserID: "claimed", Script: "a.lua"}},
		{"bad", "", hook.SourceAuth, hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusAuthFailed, Message: "bad token", Script: "a.lua"}},
		{"bad", "", hook.SourceLogin, hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusLoginFailed, Message: "bad token", Script: "a.lua"}},
		{"code", "", hook.SourceAuth, hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusForbidden, Message: "forbidden", Script: "a.lua"}},
		// Failures under the default auth policy, fail_closed.
		{"noid", "", hook.SourceAuth, hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusAuthFailed, Message: "authentication unavailable: auth hook failed", Script: "a.lua"}},
		{"weird", "", hook.SourceLogin, hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusLoginFailed, Message: "authentication unavailable: auth hook failed", Script: "a.lua"}},
	}
	for _, tt := range tests {
		got := env.rt.Auth(context.Background(), &hook.AuthRequest{Source: tt.source, Token: tt.token, UserID: tt.user})
		if got.Decision != tt.want.Decision || got.UserID != tt.want.UserID || got.Nick != tt.want.Nick ||
			got.Avatar != tt.want.Avatar || strings.Join(got.Groups, ",") != strings.Join(tt.want.Groups, ",") ||
			got.Code != tt.want.Code || got.Message != tt.want.Message || got.Script != tt.want.Script {
			t.Errorf("token %q: got %+v, want %+v", tt.token, got, tt.want)
		}
	}
}

func TestDisconnectRunsEveryScript(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": `return {disconnect = function(ev) tim.incr("gone:" .. ev.user .. ":" .. ev.reason, 1, 60) end}`,
		"b.lua": `return {disconnect = function(ev) error("boom") end}`,
		"c.lua": `return {disconnect = function(ev) tim.incr("gone:c", 1, 60); return "deny" end}`,
	}, nil)
	env.rt.Disconnect(context.Background(), &hook.DisconnectEvent{User: "alice", Reason: "idle"})
	if env.rt.Counters().Get("gone:alice:idle") != 1 || env.rt.Counters().Get("gone:c") != 1 {
		t.Fatalf("disconnect scripts did not all run; logs:\n%s", env.logs)
	}
	if !strings.Contains(env.logs.String(), "b.lua:1: boom") {
		t.Errorf("error not logged with script and line:\n%s", env.logs)
	}
}

func TestFailurePolicy(t *testing.T) {
	broken := map[string]string{
		"a.lua": `return {
  connect = function() error("connect broke") end,
  auth = function() local t = nil; return t.x end,
  message = function(msg) msg.content = "changed by a"; error("message broke") end,
  join = function() return {} end,
}`,
		"b.lua": `return {message = function(msg) msg.extras.b = 1 end}`,
	}
	for _, closed := range []bool{false, true} {
		policy := config.PolicyFailOpen
		if closed {
			policy = config.PolicyFailClosed
		}
		t.Run(policy, func(t *testing.T) {
			env := newEnv(t, broken, func(c *config.Hooks) {
				for _, p := range c.Points() {
					p.Policy = policy
				}
			})
			ctx := context.Background()
			if rep := env.rt.Connect(ctx, &hook.ConnectRequest{Addr: "1.2.3.4:5"}); rep.Deny != closed {
				t.Errorf("connect: %+v", rep)
			}
			if rep := env.rt.Auth(ctx, &hook.AuthRequest{Source: hook.SourceAuth, Token: "t"}); (rep.Decision == hook.AuthReject) != closed {
				t.Errorf("auth: %+v", rep)
			}
			if rep := env.rt.Join(ctx, &hook.JoinRequest{User: "u", Group: "g"}); rep.Deny != closed {
				t.Errorf("join: %+v", rep)
			}
			rep, c := env.send("u", "v", "hi")
			if closed {
				if rep.Action != hook.MessageReject || rep.Code != packet.StatusRejected || rep.Script != "a.lua" {
					t.Errorf("message: %+v", rep)
				}
			} else {
				// a.lua failed and is skipped; b.lua still ran. The changes a.lua made
				// before failing stay in the table (documented).
				if rep.Action != hook.MessageRewrite || !strings.Contains(string(c.Extras), `"b":1`) {
					t.Errorf("message: %+v %s", rep, c.Extras)
				}
			}
			logs := env.logs.String()
			for _, want := range []string{"a.lua:2: connect broke", "a.lua:3: attempt to index", "a.lua:4: message broke", "unknown decision"} {
				if !strings.Contains(logs, want) && !(want == "unknown decision" && strings.Contains(logs, "hook returned a table")) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if !strings.Contains(logs, "line=2") {
				t.Errorf("log lacks the line attribute:\n%s", logs)
			}
		})
	}
}
