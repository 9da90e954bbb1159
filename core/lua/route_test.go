package lua

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

func TestSendAndDeliverTo(t *testing.T) {
	env := newEnv(t, map[string]string{"route.lua": `
local M = {}
function M.message(msg)
  if msg.content == "send" then
    tim.send{from = "bot", to = msg.from, content = "pong", msgType = 2, extras = {k = "v"}}
    return "drop"
  elseif msg.content == "send-group" then
    tim.send{from = "bot", groupId = "g1", content = "to all"}
  elseif msg.content == "copy" then
    tim.deliver_to("agent1", "agent2")
  elseif msg.content == "copy-reject" then
    tim.deliver_to("agent1")
    return "reject", "no"
  elseif msg.content == "forged" then
    local _, err = pcall(tim.send, {from = "admin", to = "x", content = "hi"})
    msg.content = tostring(err)
  elseif msg.content == "both" then
    local _, err = pcall(tim.send, {from = "bot", to = "x", groupId = "g", content = "hi"})
    msg.content = tostring(err)
  elseif msg.content == "many" then
    local _, err = pcall(function() for i = 1, 20 do tim.deliver_to("u" .. i) end end)
    msg.content = tostring(err)
  elseif msg.content == "fails" then
    tim.send{from = "bot", to = "x", content = "hi"}
    error("after sending")
  end
end
function M.join(req)
  tim.send{from = "bot", to = req.user, content = "welcome"}
end
return M`}, func(c *config.Hooks) { c.Senders = []string{"bot"} })

	rep, _ := env.send("alice", "bob", "send")
	if rep.Action != hook.MessageDrop || len(rep.Sends) != 1 {
		t.Fatalf("send: %+v", rep)
	}
	s := rep.Sends[0]
	if s.From != "bot" || s.To != "alice" || s.Content != "pong" || s.MsgType != 2 || string(s.Extras) != `{"k":"v"}` || s.ChatType != 2 {
		t.Fatalf("the message sent: %+v extras %s", s, s.Extras)
	}
	if rep, _ := env.send("alice", "bob", "send-group"); len(rep.Sends) != 1 || rep.Sends[0].GroupID != "g1" || rep.Sends[0].ChatType != 1 {
		t.Fatalf("send to a group: %+v", rep)
	}
	if rep, _ := env.send("alice", "bob", "copy"); rep.Action != hook.MessagePass || strings.Join(rep.Also, ",") != "agent1,agent2" {
		t.Fatalf("deliver_to: %+v", rep)
	}
	if rep, _ := env.send("alice", "bob", "copy-reject"); rep.Action != hook.MessageReject || rep.Also != nil {
		t.Fatalf("a rejected message is copied to nobody: %+v", rep)
	}
	// The next message starts clean: nothing carries over from the previous calls.
	if rep, _ := env.send("alice", "bob", "plain"); len(rep.Sends) != 0 || rep.Also != nil {
		t.Fatalf("a plain message after sends: %+v", rep)
	}
	for _, tc := range []struct{ content, want string }{
		{"forged", `"admin" is not in hooks.senders`},
		{"both", "not both"},
		{"many", "at most 16"},
	} {
		rep, c := env.send("alice", "bob", tc.content)
		if len(rep.Sends) != 0 {
			t.Errorf("%s: a refused send was sent: %+v", tc.content, rep)
		}
		if !strings.Contains(c.Content, tc.want) {
			t.Errorf("%s: error %q, want one saying %q", tc.content, c.Content, tc.want)
		}
	}
	if rep, _ := env.send("alice", "bob", "fails"); len(rep.Sends) != 0 {
		t.Errorf("a script that failed after tim.send still sent: %+v", rep)
	}
	// Outside the message hook tim.send is an error.
	before := env.logs.String()
	env.rt.Join(context.Background(), &hook.JoinRequest{User: "alice", Group: "g"})
	if !strings.Contains(strings.TrimPrefix(env.logs.String(), before), "message hook only") {
		t.Errorf("tim.send in the join hook: log %s", env.logs.String())
	}
}

func TestKVAndSlidingCounter(t *testing.T) {
	var now int64
	kv := newKV(func() int64 { return now })
	kv.Set("agent:alice", "a1", 10*time.Second)
	if v, ok := kv.Get("agent:alice"); !ok || v != "a1" {
		t.Fatalf("get: %q %v", v, ok)
	}
	now += int64(8 * time.Second)
	kv.Set("agent:alice", "a1", 10*time.Second) // slides the expiry
	now += int64(8 * time.Second)
	if _, ok := kv.Get("agent:alice"); !ok {
		t.Fatal("a set 8 s ago with a 10 s TTL expired")
	}
	now += int64(3 * time.Second)
	if _, ok := kv.Get("agent:alice"); ok {
		t.Fatal("an entry outlived its TTL")
	}
	kv.Set("k", "v", time.Second)
	kv.Delete("k")
	if _, ok := kv.Get("k"); ok {
		t.Fatal("a deleted entry is still there")
	}

	c := newCounters(func() int64 { return now })
	for range 3 {
		c.IncrSliding("load", 1, 10*time.Second)
		now += int64(6 * time.Second) // each increment within the TTL of the last
	}
	if got := c.Get("load"); got != 3 {
		t.Fatalf("sliding counter = %d, want 3 (a fixed window would have reset)", got)
	}
	now += int64(5 * time.Second)
	if got := c.Get("load"); got != 0 {
		t.Fatalf("sliding counter idle past its TTL = %d, want 0", got)
	}
	c.Incr("fixed", 1, 10*time.Second)
	now += int64(6 * time.Second)
	c.Incr("fixed", 1, 10*time.Second)
	now += int64(6 * time.Second)
	if got := c.Get("fixed"); got != 0 {
		t.Fatalf("fixed window counter = %d after its window, want 0", got)
	}
}

func TestKVFromScripts(t *testing.T) {
	env := newEnv(t, map[string]string{"kv.lua": `
local M = {}
function M.message(msg)
  if msg.content == "set" then tim.kv_set("pair:" .. msg.from, msg.to, 60)
  elseif msg.content == "del" then tim.kv_del("pair:" .. msg.from)
  else msg.content = tostring(tim.kv_get("pair:" .. msg.from)) end
end
return M`}, nil)
	env.send("alice", "agent7", "set")
	if _, c := env.send("alice", "x", "get"); c.Content != "agent7" {
		t.Fatalf("kv_get in another call: %q", c.Content)
	}
	env.send("alice", "x", "del")
	if _, c := env.send("alice", "x", "get"); c.Content != "nil" {
		t.Fatalf("kv_get after kv_del: %q", c.Content)
	}
}
