package lua

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// offlineEvent is a message.offline event of a group chat.
func offlineEvent() *hook.EventRequest {
	return &hook.EventRequest{Type: "message.offline", ID: "e1", Time: 1700000000000, Node: "n1",
		Message:      &hook.EventMessage{ID: "m1", From: "alice", GroupID: "g1", ChatType: 2, MsgType: 0, Content: "urgent: hi", Seq: 7},
		OfflineUsers: []string{"bob", "carol"}, Members: 3}
}

func TestEventHook(t *testing.T) {
	const script = `return {event = function(ev)
  if ev.type == "user.online" then return "drop" end
  if ev.type == "user.offline" then return "maybe" end
  if ev.reason == "fn" then ev.extra.f = function() end end
  if ev.reason == "write" then ev.user = "mallory" end
  if ev.reason == "write message" then ev.message.content = "x" end
  if ev.reason == "list" then ev.extra[1] = "a" end
  if ev.type == "message.offline" then
    ev.extra.priority = ev.message.content:find("urgent", 1, true) and "high" or "low"
    ev.extra.who = {ev.message.from, ev.offline_users[2], ev.id, ev.node}
    ev.extra.n = {members = ev.members, seq = ev.message.seq, chatType = ev.message.chatType, time = ev.time}
    ev.extra.ok = true
  end
end}`
	refused := func(reason string) *hook.EventRequest {
		return &hook.EventRequest{Type: "message.refused", ID: "e2", Code: 403, Reason: reason,
			Message: &hook.EventMessage{ID: "m2", From: "alice", To: "bob", ChatType: 1}}
	}
	for _, tt := range []struct {
		name   string
		policy string
		req    *hook.EventRequest
		want   hook.EventReply
		logged string // a failure logged
	}{
		{name: "extra added", req: offlineEvent(), want: hook.EventReply{Extra: map[string]any{
			"priority": "high", "who": []any{"alice", "carol", "e1", "n1"}, "ok": true,
			"n": map[string]any{"members": 3.0, "seq": 7.0, "chatType": 2.0, "time": 1700000000000.0}}}},
		{name: "drop", req: &hook.EventRequest{Type: "user.online", ID: "e3", User: "bob"}, want: hook.EventReply{Drop: true, Script: "a.lua"}},
		{name: "nothing added", req: &hook.EventRequest{Type: "message.refused", ID: "e4", Reason: "fine"}, want: hook.EventReply{}},
		{name: "bad decision fails open", policy: config.PolicyFailOpen, req: &hook.EventRequest{Type: "user.offline", ID: "e5", User: "bob"},
			want: hook.EventReply{}, logged: `unknown decision \"maybe\"`},
		{name: "bad decision fails closed", policy: config.PolicyFailClosed, req: &hook.EventRequest{Type: "user.offline", ID: "e6", User: "bob"},
			want: hook.EventReply{Drop: true, Script: "a.lua"}, logged: `unknown decision \"maybe\"`},
		{name: "function in extra fails open", policy: config.PolicyFailOpen, req: refused("fn"),
			want: hook.EventReply{}, logged: "ev.extra: a function has no JSON form"},
		{name: "list extra fails open", policy: config.PolicyFailOpen, req: refused("list"),
			want: hook.EventReply{}, logged: "ev.extra is a list"},
		{name: "ev is read-only", policy: config.PolicyFailOpen, req: refused("write"),
			want: hook.EventReply{}, logged: "ev is read-only: add fields to ev.extra"},
		{name: "ev.message is read-only", policy: config.PolicyFailOpen, req: refused("write message"),
			want: hook.EventReply{}, logged: "ev is read-only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, map[string]string{"a.lua": script}, func(c *config.Hooks) {
				if tt.policy != "" {
					c.Message.Policy = tt.policy
				}
			})
			got := env.rt.Event(context.Background(), tt.req)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if logs := env.logs.String(); tt.logged != "" && !strings.Contains(logs, tt.logged) {
				t.Errorf("failure not logged (want %q): %s", tt.logged, logs)
			}
		})
	}
}

// TestEventHookChain: scripts share ev.extra in the message point's order; a drop
// skips the rest; a failing script leaves the event unchanged (fail_open), what the
// scripts before it added included.
func TestEventHookChain(t *testing.T) {
	files := map[string]string{
		"a.lua": `return {event = function(ev) ev.extra.a = 1; if ev.user == "x" then error("boom") end end}`,
		"b.lua": `return {event = function(ev) ev.extra.b = (ev.extra.a or 0) + 1; if ev.user == "d" then return "drop" end end}`,
		"c.lua": `return {event = function(ev) ev.extra.c = "ran" end}`,
	}
	env := newEnv(t, files, func(c *config.Hooks) { c.Message.Order = []string{"b", "a"} })
	for _, tt := range []struct {
		user string
		want hook.EventReply
	}{
		{"u", hook.EventReply{Extra: map[string]any{"a": 1.0, "b": 1.0, "c": "ran"}}}, // b = 1: b ran before a
		{"d", hook.EventReply{Drop: true, Script: "b.lua"}},
		{"x", hook.EventReply{}},
	} {
		got := env.rt.Event(context.Background(), &hook.EventRequest{Type: "user.online", User: tt.user})
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("user %s: got %+v, want %+v", tt.user, got, tt.want)
		}
	}
}

// TestEventHookNoState: without a script defining event, Event takes no Lua state
// (here the only one is held and the context is done: a call that needed one would
// fail, and fail_closed would drop the event).
func TestEventHookNoState(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script string
		want   hook.EventReply
	}{
		{"no event hook: no state taken", `return {message = function(msg) end}`, hook.EventReply{}},
		{"event hook: a state is needed", `return {event = function(ev) end}`, hook.EventReply{Drop: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, map[string]string{"a.lua": tt.script}, func(c *config.Hooks) {
				c.PoolSize = 1
				c.Message.Policy = config.PolicyFailClosed
			})
			held, err := env.rt.acquire(context.Background(), env.rt.gen.Load())
			if err != nil {
				t.Fatal(err)
			}
			defer env.rt.release(held)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if got := env.rt.Event(ctx, offlineEvent()); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// BenchmarkEvent is the cost of the event hook per webhook event: no script defining
// event (no Lua state taken), and a script adding one extra field.
func BenchmarkEvent(b *testing.B) {
	for _, bc := range []struct{ name, script string }{
		{"no-script", `return {message = function() end}`},
		{"extra", `return {event = function(ev) if ev.type == "message.offline" then ev.extra.priority = "high" end end}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			env := newEnv(b, map[string]string{"a.lua": bc.script}, nil)
			req := offlineEvent()
			b.ReportAllocs()
			for b.Loop() {
				env.rt.Event(context.Background(), req)
			}
		})
	}
}
