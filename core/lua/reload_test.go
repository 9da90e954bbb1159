package lua

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// tagScript marks every message with tag.
func tagScript(tag string) string {
	return `return {message = function(msg) msg.content = msg.content .. "` + tag + `" end}`
}

// content sends "" and returns what the scripts made of it.
func (e *testEnv) content() string {
	_, c := e.send("u", "v", "")
	return c.Content
}

// waitContent waits up to 1 s for the scripts to produce want, and returns how long.
func (e *testEnv) waitContent(t *testing.T, want string) time.Duration {
	t.Helper()
	start := time.Now()
	if !eventually(time.Second, func() bool { return e.content() == want }) {
		t.Fatalf("after 1s content is %q, want %q; status %+v\nlogs:\n%s", e.content(), want, e.rt.Status(), e.logs)
	}
	return time.Since(start)
}

func TestHotReloadEdit(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": tagScript("1")}, nil)
	if got := env.content(); got != "1" {
		t.Fatalf("content %q", got)
	}
	writeFiles(t, env.dir, map[string]string{"a.lua": tagScript("2")})
	took := env.waitContent(t, "2")
	t.Logf("edit took effect after %v", took)

	// An editor's write-to-temp-then-rename.
	tmp := filepath.Join(env.dir, ".a.lua.swp")
	if err := os.WriteFile(tmp, []byte(tagScript("3")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(env.dir, "a.lua")); err != nil {
		t.Fatal(err)
	}
	took = env.waitContent(t, "3")
	t.Logf("rename took effect after %v", took)

	st := env.rt.Status()
	if len(st) != 1 || st[0].Version != 3 || !st[0].Active || st[0].LastError != "" {
		t.Errorf("status %+v", st)
	}
}

func TestHotReloadAddRemove(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": tagScript("a")}, nil)
	writeFiles(t, env.dir, map[string]string{"b.lua": tagScript("b")})
	env.waitContent(t, "ab")
	if err := os.Remove(filepath.Join(env.dir, "a.lua")); err != nil {
		t.Fatal(err)
	}
	env.waitContent(t, "b")
	if st := env.rt.Status(); len(st) != 1 || st[0].Name != "b.lua" {
		t.Errorf("status %+v", st)
	}
}

func TestBrokenScriptKeepsOldVersion(t *testing.T) {
	for _, tt := range []struct {
		name, src, wantErr string
	}{
		{"syntax error", `return {message = function(msg) msg.content = "x" .. end}`, "compile script a.lua"},
		{"runtime error at load", "local x = nil\nreturn {message = x.y}", "a.lua:2:"},
		{"no table", `return 42`, "returned a number"},
		{"no hook", `return {on_message = function() end}`, "defines no hook"},
		{"hook not a function", `return {message = "x"}`, "message is a string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, map[string]string{"a.lua": tagScript("old")}, nil)
			writeFiles(t, env.dir, map[string]string{"a.lua": tt.src})
			if !eventually(time.Second, func() bool {
				st := env.rt.Status()
				return len(st) == 1 && st[0].LastError != ""
			}) {
				t.Fatalf("error not reported: %+v", env.rt.Status())
			}
			st := env.rt.Status()[0]
			if !strings.Contains(st.LastError, tt.wantErr) || !st.Active || st.Version != 1 {
				t.Errorf("status %+v, want error containing %q", st, tt.wantErr)
			}
			if got := env.content(); got != "old" {
				t.Errorf("old version not active: %q", got)
			}
			if !strings.Contains(env.logs.String(), "script rejected") {
				t.Errorf("rejection not logged:\n%s", env.logs)
			}
			// Back to the active content: the error is obsolete.
			writeFiles(t, env.dir, map[string]string{"a.lua": tagScript("old")})
			if !eventually(time.Second, func() bool { return env.rt.Status()[0].LastError == "" }) {
				t.Errorf("error kept after revert: %+v", env.rt.Status()[0])
			}
			// A fixed version loads and clears the error.
			writeFiles(t, env.dir, map[string]string{"a.lua": tagScript("new")})
			env.waitContent(t, "new")
			if st := env.rt.Status()[0]; st.LastError != "" || st.Version != 2 {
				t.Errorf("status after fix %+v", st)
			}
		})
	}
}

func TestBrokenNewScriptIsInactive(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": tagScript("a")}, nil)
	writeFiles(t, env.dir, map[string]string{"b.lua": `return {`})
	if !eventually(time.Second, func() bool { return len(env.rt.Status()) == 2 }) {
		t.Fatalf("status %+v", env.rt.Status())
	}
	st := env.rt.Status()[1]
	if st.Name != "b.lua" || st.Active || st.LastError == "" {
		t.Errorf("status %+v", st)
	}
	if got := env.content(); got != "a" {
		t.Errorf("content %q", got)
	}
}

func TestNewFailsOnBadScript(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.lua": `return {`})
	if _, err := New(testCfg(dir), Options{}); err == nil || !strings.Contains(err.Error(), "a.lua") {
		t.Errorf("New with a broken script: %v", err)
	}
	cfg := testCfg(dir)
	cfg.Scripts = []string{"missing.lua"}
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "missing.lua") {
		t.Errorf("New with a missing script: %v", err)
	}
	cfg.Timeout = 0
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "hooks.timeout") {
		t.Errorf("New with a bad config: %v", err)
	}
}

func TestReloadConfig(t *testing.T) {
	env := newEnv(t, map[string]string{
		"a.lua": tagScript("a"),
		"b.lua": `local tag = tim.config("tag") or "b"; return {message = function(msg) msg.content = msg.content .. tag end}`,
	}, nil)
	if got := env.content(); got != "ab" {
		t.Fatalf("content %q", got)
	}
	cfg := testCfg(env.dir)
	cfg.Message.Order = []string{"b.lua"}
	cfg.Vars = map[string]any{"tag": "B"}
	if err := env.rt.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := env.content(); got != "Ba" {
		t.Errorf("after reload %q, want Ba", got)
	}
	cfg.Enabled = false
	if err := env.rt.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := env.content(); got != "" {
		t.Errorf("disabled hooks ran: %q", got)
	}
	cfg.Enabled = true
	cfg.Scripts = []string{"a.lua"}
	if err := env.rt.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := env.content(); got != "a" {
		t.Errorf("re-enabled: %q", got)
	}
	bad := cfg
	bad.Message.Policy = "maybe"
	if err := env.rt.Reload(bad); err == nil {
		t.Error("invalid config accepted")
	}
	if got := env.content(); got != "a" {
		t.Errorf("invalid config changed things: %q", got)
	}
}

func TestWordFileReload(t *testing.T) {
	env := newEnv(t, map[string]string{
		"banned.txt": "# words\nfoo\n",
		"w.lua":      `local m = tim.words("banned"); return {message = function(msg) msg.content = m:mask(msg.content) end}`,
	}, nil)
	if _, c := env.send("u", "v", "foo bar"); c.Content != "*** bar" {
		t.Fatalf("content %q", c.Content)
	}
	writeFiles(t, env.dir, map[string]string{"banned.txt": "foo\nbar\n"})
	if !eventually(time.Second, func() bool { _, c := env.send("u", "v", "foo bar"); return c.Content == "*** ***" }) {
		t.Fatal("word list change not applied")
	}
}

// TestReloadUnderLoad edits scripts while goroutines send messages: every message
// sees exactly one version, none fails.
func TestReloadUnderLoad(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": tagScript("v0")}, func(c *config.Hooks) {
		c.PoolSize = 3
		c.Timeout = 2 * time.Second // wall-clock: a starved CI machine must not time out
	})
	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		bad    atomic.Int64
		seen   sync.Map
		counts atomic.Int64
	)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c := chat("u", "v", "")
				rep := env.rt.Message(context.Background(), &hook.MessageRequest{Sender: "u", Chat: c})
				if rep.Action != hook.MessageRewrite || !strings.HasPrefix(c.Content, "v") || len(c.Content) != 2 {
					if bad.Add(1) == 1 {
						t.Logf("bad: %+v %q", rep, c.Content)
					}
				}
				seen.Store(c.Content, true)
				counts.Add(1)
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		writeFiles(t, env.dir, map[string]string{"a.lua": tagScript("v" + string(rune('0'+i)))})
		time.Sleep(250 * time.Millisecond)
	}
	eventually(time.Second, func() bool { _, ok := seen.Load("v5"); return ok })
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d of %d messages saw no or a mixed version\n%s", bad.Load(), counts.Load(), env.logs)
	}
	if _, ok := seen.Load("v5"); !ok {
		t.Error("last version never seen")
	}
}
