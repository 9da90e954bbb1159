package lua

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

func TestMessageDecisions(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		chat       *packet.Chat
		wantAction hook.MessageAction
		wantCode   packet.Status
		wantReason string
		check      func(t *testing.T, rep hook.MessageReply, c *packet.Chat)
	}{
		{
			name:       "nil passes",
			script:     `return {message = function(msg) end}`,
			wantAction: hook.MessagePass,
		},
		{
			name:       "pass string",
			script:     `return {message = function(msg) return "pass" end}`,
			wantAction: hook.MessagePass,
		},
		{
			name:       "reading fields changes nothing",
			script:     `return {message = function(msg, ctx) local _ = msg.content .. msg.to .. ctx.user .. ctx.protocol; local x = msg.extras end}`,
			wantAction: hook.MessagePass,
		},
		{
			name:       "reject default code",
			script:     `return {message = function(msg) return "reject", "nope" end}`,
			wantAction: hook.MessageReject, wantCode: packet.StatusRejected, wantReason: "nope",
		},
		{
			name:       "reject rate limited",
			script:     `return {message = function(msg) return "reject", "slow down", tim.RATE_LIMITED end}`,
			wantAction: hook.MessageReject, wantCode: packet.StatusRateLimited, wantReason: "slow down",
		},
		{
			name:       "drop",
			script:     `return {message = function(msg) return "drop" end}`,
			wantAction: hook.MessageDrop,
		},
		{
			name:       "rewrite content",
			script:     `return {message = function(msg) msg.content = msg.content:upper() end}`,
			wantAction: hook.MessageRewrite,
			check: func(t *testing.T, rep hook.MessageReply, c *packet.Chat) {
				if c.Content != "HELLO" || rep.Changed != hook.ChangedContent {
					t.Errorf("content %q changed %b", c.Content, rep.Changed)
				}
			},
		},
		{
			name:       "rewrite extras",
			script:     `return {message = function(msg) msg.extras.flag = true; msg.extras.n = 2 end}`,
			wantAction: hook.MessageRewrite,
			check: func(t *testing.T, rep hook.MessageReply, c *packet.Chat) {
				var m map[string]any
				if err := json.Unmarshal(c.Extras, &m); err != nil || m["flag"] != true || m["n"] != 2.0 || m["keep"] != "x" {
					t.Errorf("extras %s (%v)", c.Extras, err)
				}
				if rep.Changed != hook.ChangedExtras {
					t.Errorf("changed %b", rep.Changed)
				}
			},
		},
		{
			name:       "reroute to one user",
			script:     `return {message = function(msg) msg.to = "carol" end}`,
			wantAction: hook.MessageReroute,
			check: func(t *testing.T, rep hook.MessageReply, c *packet.Chat) {
				if c.To != "carol" || len(rep.To) != 1 || rep.To[0] != "carol" || rep.GroupID != "" || c.ChatType != packet.ChatTypePrivate {
					t.Errorf("chat %+v reply %+v", c, rep)
				}
			},
		},
		{
			name:       "reroute to several users",
			script:     `return {message = function(msg) msg.to = {"carol", "dave"} end}`,
			wantAction: hook.MessageReroute,
			check: func(t *testing.T, rep hook.MessageReply, c *packet.Chat) {
				if c.To != "" || len(rep.To) != 2 || rep.To[1] != "dave" {
					t.Errorf("chat %+v reply %+v", c, rep)
				}
			},
		},
		{
			name:       "reroute to a group",
			script:     `return {message = function(msg) msg.to = nil; msg.groupId = "g1"; msg.content = "x" end}`,
			wantAction: hook.MessageReroute,
			check: func(t *testing.T, rep hook.MessageReply, c *packet.Chat) {
				if c.GroupID != "g1" || c.ChatType != packet.ChatTypeGroup || c.To != "" || rep.GroupID != "g1" || len(rep.To) != 0 {
					t.Errorf("chat %+v reply %+v", c, rep)
				}
				if rep.Changed&hook.ChangedContent == 0 || c.Content != "x" {
					t.Errorf("content change lost: %+v", rep)
				}
			},
		},
		{
			name:       "accept stops the chain",
			script:     `return {message = function(msg) return "accept" end}`,
			wantAction: hook.MessagePass,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, map[string]string{"a.lua": tt.script}, nil)
			c := chat("alice", "bob", "hello")
			c.Extras = json.RawMessage(`{"keep":"x"}`)
			rep := env.rt.Message(context.Background(), &hook.MessageRequest{Sender: "alice", Protocol: "tcp", Chat: c})
			if rep.Action != tt.wantAction {
				t.Fatalf("action %v, want %v (reply %+v, logs %s)", rep.Action, tt.wantAction, rep, env.logs)
			}
			if tt.wantCode != 0 && rep.Code != tt.wantCode {
				t.Errorf("code %d, want %d", rep.Code, tt.wantCode)
			}
			if tt.wantReason != "" && rep.Reason != tt.wantReason {
				t.Errorf("reason %q, want %q", rep.Reason, tt.wantReason)
			}
			if tt.wantAction == hook.MessagePass && (c.Content != "hello" || string(c.Extras) != `{"keep":"x"}`) {
				t.Errorf("message changed on pass: %+v", c)
			}
			if tt.wantAction != hook.MessagePass && tt.wantAction != hook.MessageReject && rep.Script != "a.lua" {
				t.Errorf("script %q", rep.Script)
			}
			if tt.check != nil {
				tt.check(t, rep, c)
			}
		})
	}
}

func TestMessageOrder(t *testing.T) {
	files := map[string]string{
		"a.lua": `return {message = function(msg) msg.content = msg.content .. "a" end}`,
		"b.lua": `return {message = function(msg) msg.content = msg.content .. "b" end}`,
		"c.lua": `return {message = function(msg) if msg.content:find("stop", 1, true) then return "accept" end msg.content = msg.content .. "c" end}`,
	}
	tests := []struct {
		name    string
		scripts []string
		order   []string
		in      string
		want    string
	}{
		{"load order", []string{"*.lua"}, nil, "", "abc"},
		{"scripts list order", []string{"c.lua", "b.lua", "a.lua"}, nil, "", "cba"},
		{"hook order first", []string{"*.lua"}, []string{"b.lua", "c"}, "", "bca"},
		{"accept stops", []string{"c.lua", "a.lua"}, nil, "stop", "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, files, func(c *config.Hooks) {
				c.Scripts = tt.scripts
				c.Message.Order = tt.order
			})
			_, c := env.send("u", "v", tt.in)
			if c.Content != tt.want {
				t.Errorf("content %q, want %q", c.Content, tt.want)
			}
		})
	}
}
