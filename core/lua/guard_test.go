package lua

import (
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	env := newEnv(t, map[string]string{"g.lua": `
tim.guard{words = {"spam"}, whole_words = true, regex = "https?://", rate = {limit = 3, window = 60},
  flood = {max = 2, window = 60}, exempt = {"root"}}
local M = {}
function M.message(msg, ctx)
  tim.incr("ran", 1, 60)
  msg.content = "[" .. tostring(ctx.guard) .. "]"
end
return M`}, nil)
	ran := func() int64 { return env.rt.Counters().Get("ran") }
	send := func(from, content string) string {
		_, c := env.send(from, "bob", content)
		return c.Content
	}
	tests := []struct {
		from, content, want string
		ran                 int64 // script runs so far
	}{
		{"alice", "hello", "hello", 0},                // no guard fires: the script does not run
		{"alice", "buy spam now", "[words]", 1},       // a word
		{"alice", "spammer", "spammer", 1},            // whole words only
		{"bob", "see http://x", "[regex]", 2},         // the regexp
		{"carol", "a", "a", 2},                        // carol: 1
		{"carol", "b", "b", 2},                        // 2
		{"carol", "c", "c", 2},                        // 3
		{"carol", "d", "[rate]", 3},                   // 4 > 3
		{"dave", "same", "same", 3},                   // flood 1
		{"dave", "same", "same", 3},                   // 2
		{"dave", "same", "[flood]", 4},                // 3 > 2
		{"root", "spam http://x", "spam http://x", 4}, // exempt
	}
	for i, tt := range tests {
		if got := send(tt.from, tt.content); got != tt.want || ran() != tt.ran {
			t.Fatalf("%d: %s %q -> %q (script ran %d times); want %q, %d", i, tt.from, tt.content, got, ran(), tt.want, tt.ran)
		}
	}
}

func TestGuardOnlyGuardsItsScript(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": `tim.guard{words = {"x"}}
return {message = function(msg) msg.content = msg.content .. "+a" end}`,
		"b.lua": `return {message = function(msg, ctx) msg.content = msg.content .. "+b" .. tostring(ctx.guard) end}`,
	}, nil)
	if _, c := env.send("u", "v", "plain"); c.Content != "plain+bnil" {
		t.Fatalf("unguarded b must run, guarded a must not: %q", c.Content)
	}
	if _, c := env.send("u", "v", "x marks"); c.Content != "x marks+a+bnil" {
		t.Fatalf("a's guard fired: %q", c.Content)
	}
}

func TestGuardOnlyAtLoad(t *testing.T) {
	env := newEnv(t, map[string]string{"late.lua": `
return {message = function(msg)
  local ok, err = pcall(tim.guard, {words = {"x"}})
  msg.content = tostring(err)
end}`}, nil)
	if _, c := env.send("u", "v", "hi"); !strings.Contains(c.Content, "when the script loads") {
		t.Fatalf("tim.guard in a hook: %q", c.Content)
	}
}
