package lua

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gopkg.in/yaml.v3"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

// shippedDir is the repository's scripts directory.
const shippedDir = "../../scripts"

// shipped starts a Runtime on the shipped scripts with cfg adjusted by mutate.
func shipped(t *testing.T, mutate func(*config.Hooks)) *testEnv {
	t.Helper()
	cfg := config.DefaultHooks()
	cfg.Dir = shippedDir
	cfg.Watch = false
	if mutate != nil {
		mutate(&cfg)
	}
	env := &testEnv{dir: shippedDir, logs: &logBuffer{}, pres: &presence{}}
	rt, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(env.logs, nil)), Presence: env.pres})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	env.rt = rt
	return env
}

// moderationVars returns the default moderation vars with overrides.
func moderationVars(over map[string]any) map[string]any {
	m := config.DefaultHooks().Vars["moderation"].(map[string]any)
	for k, v := range over {
		m[k] = v
	}
	return map[string]any{"moderation": m}
}

func TestShippedDefaultConfig(t *testing.T) {
	env := shipped(t, nil) // conf defaults: moderation on, masking, "badword" listed
	for _, tt := range []struct {
		in, want string
		action   hook.MessageAction
	}{
		{"hello there, how are you?", "hello there, how are you?", hook.MessagePass},
		{"what a badword!", "what a *******!", hook.MessageRewrite},
		{"BADWORD in caps", "******* in caps", hook.MessageRewrite},
		{"badwords is another word", "badwords is another word", hook.MessagePass}, // whole words
		{"", "", hook.MessagePass},
		{"早上好 badword 再见", "早上好 ******* 再见", hook.MessageRewrite},
	} {
		rep, c := env.send("alice", "bob", tt.in)
		if rep.Action != tt.action || c.Content != tt.want {
			t.Errorf("%q: %v %q, want %v %q", tt.in, rep.Action, c.Content, tt.action, tt.want)
		}
	}
	st := env.rt.Status()
	if len(st) != 1 || st[0].Name != "moderation.lua" || !st[0].Active || len(st[0].Hooks) != 1 || st[0].Hooks[0] != hook.PointMessage {
		t.Errorf("status %+v", st)
	}
}

func TestShippedBuiltinFallback(t *testing.T) {
	cfg := config.DefaultHooks()
	cfg.Dir = t.TempDir() + "/does-not-exist"
	rt, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	c := chat("a", "b", "a badword")
	rt.Message(context.Background(), &hook.MessageRequest{Sender: "a", Chat: c})
	if c.Content != "a *******" {
		t.Errorf("built-in moderation: %q", c.Content)
	}
}

func TestModerationReject(t *testing.T) {
	env := shipped(t, func(c *config.Hooks) {
		c.Vars = moderationVars(map[string]any{"action": "reject", "exempt": []any{"system"}})
	})
	rep, c := env.send("alice", "bob", "you badword")
	if rep.Action != hook.MessageReject || rep.Code != packet.StatusRejected || rep.Script != "moderation.lua" {
		t.Errorf("reject: %+v", rep)
	}
	if c.Content != "you badword" {
		t.Errorf("rejected message changed: %q", c.Content)
	}
	if rep, _ := env.send("alice", "bob", "fine text"); rep.Action != hook.MessagePass {
		t.Errorf("normal message: %+v", rep)
	}
	if rep, _ := env.send("system", "bob", "badword"); rep.Action != hook.MessagePass {
		t.Errorf("exempt user: %+v", rep)
	}
}

func TestModerationRateLimit(t *testing.T) {
	env := shipped(t, func(c *config.Hooks) {
		c.Vars = moderationVars(map[string]any{"rate_limit": 5, "rate_window": 60, "flood_max": 0})
	})
	for i := 0; i < 5; i++ {
		if rep, _ := env.send("alice", "bob", "msg "+string(rune('a'+i))); rep.Action != hook.MessagePass {
			t.Fatalf("message %d: %+v", i, rep)
		}
	}
	rep, _ := env.send("alice", "bob", "one too many")
	if rep.Action != hook.MessageReject || rep.Code != packet.StatusRateLimited {
		t.Errorf("6th message: %+v", rep)
	}
	if rep, _ := env.send("carol", "bob", "other user"); rep.Action != hook.MessagePass {
		t.Errorf("other user limited: %+v", rep)
	}
}

func TestModerationFlood(t *testing.T) {
	env := shipped(t, func(c *config.Hooks) {
		c.Vars = moderationVars(map[string]any{"flood_max": 3, "flood_window": 60})
	})
	for i := 0; i < 3; i++ {
		if rep, _ := env.send("alice", "bob", "BUY NOW"); rep.Action != hook.MessagePass {
			t.Fatalf("repeat %d: %+v", i, rep)
		}
	}
	if rep, _ := env.send("alice", "bob", "BUY NOW"); rep.Action != hook.MessageReject || rep.Code != packet.StatusRateLimited {
		t.Errorf("4th repeat: %+v", rep)
	}
	if rep, _ := env.send("alice", "bob", "something else"); rep.Action != hook.MessagePass {
		t.Errorf("different text: %+v", rep)
	}
	if rep, _ := env.send("carol", "bob", "BUY NOW"); rep.Action != hook.MessagePass {
		t.Errorf("other user: %+v", rep)
	}
}

func TestModerationWordsFile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"banned.txt": "darn\n"})
	src, err := scriptsFS().ReadFile("moderation.lua")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"moderation.lua": string(src)})
	env := newEnv(t, nil, func(c *config.Hooks) {
		c.Dir = dir
		c.Scripts = []string{"moderation.lua"}
		c.Vars = moderationVars(map[string]any{"words_file": "banned.txt"})
	})
	if _, c := env.send("a", "b", "darn badword"); c.Content != "**** *******" {
		t.Errorf("content %q", c.Content)
	}
}

func TestModerationBadConfig(t *testing.T) {
	cfg := config.DefaultHooks()
	cfg.Dir = shippedDir
	cfg.Vars = moderationVars(map[string]any{"action": "shout"})
	if _, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), `hooks.vars.moderation.action: moderation.lua wants one of mask, reject, got "shout"`) {
		t.Errorf("bad action accepted: %v", err)
	}
}

func jwtEnv(t *testing.T, extra map[string]any) *testEnv {
	vars := map[string]any{"secret": "k3y", "issuer": "timgw-test"}
	for k, v := range extra {
		vars[k] = v
	}
	return shipped(t, func(c *config.Hooks) {
		c.Scripts = []string{"auth_jwt.lua"}
		c.Vars = map[string]any{"auth_jwt": vars}
	})
}

func signHS256(t *testing.T, claims jwt.MapClaims, key string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthJWT(t *testing.T) {
	env := jwtEnv(t, nil)
	exp := time.Now().Add(time.Hour).Unix()
	good := signHS256(t, jwt.MapClaims{"sub": "alice", "iss": "timgw-test", "exp": exp, "nick": "Alice", "groups": []string{"g1"}}, "k3y")
	tests := []struct {
		name     string
		req      hook.AuthRequest
		decision hook.AuthDecision
		user     string
		code     packet.Status
		msg      string
	}{
		{"token auth", hook.AuthRequest{Source: hook.SourceAuth, Token: good}, hook.AuthAccept, "alice", 0, ""},
		{"login with matching user", hook.AuthRequest{Source: hook.SourceLogin, UserID: "alice", Token: good}, hook.AuthAccept, "alice", 0, ""},
		{"login for another user", hook.AuthRequest{Source: hook.SourceLogin, UserID: "mallory", Token: good}, hook.AuthReject, "", packet.StatusLoginFailed, "not for user mallory"},
		{"no token: built-in decides", hook.AuthRequest{Source: hook.SourceLogin, UserID: "bob", Password: "pw"}, hook.AuthPass, "", 0, ""},
		{"expired", hook.AuthRequest{Source: hook.SourceAuth, Token: signHS256(t, jwt.MapClaims{"sub": "alice", "iss": "timgw-test", "exp": time.Now().Add(-time.Hour).Unix()}, "k3y")}, hook.AuthReject, "", packet.StatusAuthFailed, "expired"},
		{"wrong key", hook.AuthRequest{Source: hook.SourceLogin, Token: signHS256(t, jwt.MapClaims{"sub": "alice", "iss": "timgw-test"}, "other")}, hook.AuthReject, "", packet.StatusLoginFailed, "invalid token"},
		{"wrong issuer", hook.AuthRequest{Source: hook.SourceAuth, Token: signHS256(t, jwt.MapClaims{"sub": "alice", "iss": "evil"}, "k3y")}, hook.AuthReject, "", packet.StatusAuthFailed, "issuer"},
		{"no subject", hook.AuthRequest{Source: hook.SourceAuth, Token: signHS256(t, jwt.MapClaims{"iss": "timgw-test"}, "k3y")}, hook.AuthReject, "", packet.StatusAuthFailed, "no sub claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := env.rt.Auth(context.Background(), &tt.req)
			if rep.Decision != tt.decision || rep.UserID != tt.user || rep.Code != tt.code || !strings.Contains(rep.Message, tt.msg) {
				t.Errorf("got %+v", rep)
			}
			if tt.name == "token auth" && (rep.Nick != "Alice" || len(rep.Groups) != 1 || rep.Groups[0] != "g1") {
				t.Errorf("claims not passed: %+v", rep)
			}
		})
	}
}

func TestAuthJWTRequireToken(t *testing.T) {
	env := jwtEnv(t, map[string]any{"require_token": true})
	rep := env.rt.Auth(context.Background(), &hook.AuthRequest{Source: hook.SourceLogin, UserID: "bob", Password: "pw"})
	if rep.Decision != hook.AuthReject || rep.Code != packet.StatusLoginFailed {
		t.Errorf("got %+v", rep)
	}
}

func TestAuthJWTNeedsSecret(t *testing.T) {
	cfg := config.DefaultHooks()
	cfg.Dir = shippedDir
	cfg.Scripts = []string{"auth_jwt.lua"}
	cfg.Vars = nil
	if _, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "hooks.vars.auth_jwt.secret: required by auth_jwt.lua") {
		t.Errorf("missing secret: %v", err)
	}
}

func routingEnv(t *testing.T) *testEnv {
	return shipped(t, func(c *config.Hooks) {
		c.Scripts = []string{"moderation.lua", "routing.lua"}
		c.Vars["routing"] = map[string]any{
			"bot_user": "botsvc", "cs_user": "cs", "cs_agents": []any{"agent1", "agent2", "agent3"}, "cs_window": 600,
		}
	})
}

func TestRoutingBot(t *testing.T) {
	env := routingEnv(t)
	rep, c := env.send("alice", "bot:weather", "weather in Paris, badword")
	if rep.Action != hook.MessageReroute || c.To != "botsvc" || len(rep.To) != 1 || rep.To[0] != "botsvc" {
		t.Fatalf("bot reroute: %+v %+v", rep, c)
	}
	var extras map[string]string
	if err := json.Unmarshal(c.Extras, &extras); err != nil || extras["bot"] != "weather" || extras["botTo"] != "bot:weather" {
		t.Errorf("extras %s (%v)", c.Extras, err)
	}
	if c.Content != "weather in Paris, *******" || rep.Changed&hook.ChangedContent == 0 {
		t.Errorf("moderation before routing: %q %b", c.Content, rep.Changed)
	}
	if rep, _ := env.send("alice", "bob", "hi"); rep.Action != hook.MessagePass {
		t.Errorf("ordinary chat: %+v", rep)
	}
	g := &packet.Chat{From: "alice", GroupID: "bot:x", ChatType: packet.ChatTypeGroup, Content: "hi"}
	if rep := env.rt.Message(context.Background(), &hook.MessageRequest{Sender: "alice", Chat: g}); rep.Action != hook.MessagePass {
		t.Errorf("group chat: %+v", rep)
	}
}

func TestRoutingCustomerService(t *testing.T) {
	env := routingEnv(t)
	if rep, c := env.send("cust1", "cs", "help"); rep.Action != hook.MessagePass || c.To != "cs" {
		t.Fatalf("no agent online: %+v %q", rep, c.To)
	}
	env.pres.set("agent1", true)
	env.pres.set("agent2", true)
	assigned := map[string]string{}
	for _, cust := range []string{"c1", "c2", "c3", "c4"} {
		rep, c := env.send(cust, "cs", "help")
		if rep.Action != hook.MessageReroute {
			t.Fatalf("%s: %+v", cust, rep)
		}
		assigned[cust] = string(c.To)
	}
	load := map[string]int{}
	for _, a := range assigned {
		load[a]++
	}
	if load["agent1"] != 2 || load["agent2"] != 2 || load["agent3"] != 0 {
		t.Errorf("not balanced over the online agents: %v", assigned)
	}
	for cust, agent := range assigned { // sticky
		if _, c := env.send(cust, "cs", "again"); string(c.To) != agent {
			t.Errorf("%s moved from %s to %s", cust, agent, c.To)
		}
	}
	env.pres.set(assigned["c1"], false)
	if _, c := env.send("c1", "cs", "hello?"); string(c.To) == assigned["c1"] || c.To == "cs" {
		t.Errorf("c1 not moved to an online agent: %q", c.To)
	}
}

func TestShippedScriptsAllLoad(t *testing.T) {
	env := shipped(t, func(c *config.Hooks) {
		c.Scripts = []string{"*.lua"}
		c.Vars["auth_jwt"] = map[string]any{"secret": "x"}
	})
	names := map[string]bool{}
	for _, st := range env.rt.Status() {
		if !st.Active || st.LastError != "" {
			t.Errorf("%+v", st)
		}
		names[st.Name] = true
	}
	for _, want := range []string{"moderation.lua", "auth_jwt.lua", "routing.lua"} {
		if !names[want] {
			t.Errorf("%s not loaded", want)
		}
	}
}

// TestReadmeExample runs the example script of scripts/README.md.
func TestReadmeExample(t *testing.T) {
	env := newEnv(t, map[string]string{"no_links.lua": `
local tim = tim
local link = tim.regex([[https?://]])
local newcomers = {}
for _, u in ipairs(tim.config("newcomers") or {}) do newcomers[u] = true end

local M = {}

function M.message(msg, ctx)
  if newcomers[msg.from] and link:match(msg.content) then
    return "reject", "links are not allowed yet"
  end
end

return M`}, func(c *config.Hooks) { c.Vars = map[string]any{"newcomers": []any{"bob"}} })
	if rep, _ := env.send("bob", "alice", "see https://x.example"); rep.Action != hook.MessageReject || rep.Reason != "links are not allowed yet" {
		t.Errorf("bob: %+v", rep)
	}
	if rep, _ := env.send("carol", "alice", "see https://x.example"); rep.Action != hook.MessagePass {
		t.Errorf("carol: %+v", rep)
	}
}

// TestConfSnippet decodes testdata/hooks.yaml (the section proposed for
// conf/timgw.yaml) over the defaults, strictly, and runs it on the shipped scripts.
func TestConfSnippet(t *testing.T) {
	data, err := os.ReadFile("testdata/hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Hooks config.Hooks `yaml:"hooks"`
	}
	doc.Hooks = config.DefaultHooks()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if err := doc.Hooks.Validate(); err != nil {
		t.Fatal(err)
	}
	def := config.DefaultHooks()
	if fmt.Sprintf("%+v", doc.Hooks) != fmt.Sprintf("%+v", def) {
		t.Errorf("snippet and DefaultHooks differ:\n%+v\n%+v", doc.Hooks, def)
	}
	doc.Hooks.Dir = shippedDir
	rt, err := New(doc.Hooks, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	c := chat("a", "b", "a badword")
	rt.Message(context.Background(), &hook.MessageRequest{Sender: "a", Chat: c})
	if c.Content != "a *******" {
		t.Errorf("content %q", c.Content)
	}
}
