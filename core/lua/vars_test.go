package lua

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/config"
)

// schemaScript declares its vars and reports what it read.
const schemaScript = `
local cfg = tim.vars("s", {
  name  = {type = "string", default = "anon"},
  limit = {type = "number", default = 5},
  count = "integer",
  on    = {type = "boolean", default = true},
  tags  = {type = "strings", default = {}},
  any   = "any",
  mode  = {type = "string", default = "a", one_of = {"a", "b"}},
  sub   = {type = "map", default = {x = 1}},
  key   = {type = "string", required = true},
})
return {message = function(msg)
  msg.content = table.concat({cfg.name, tostring(cfg.limit), tostring(cfg.count), tostring(cfg.on), #cfg.tags, cfg.mode, tostring(cfg.sub.x), cfg.key}, ",")
end}`

func TestVarsSchema(t *testing.T) {
	for _, tt := range []struct {
		name    string
		section any
		want    string // content, or the error
	}{
		{"defaults", map[string]any{"key": "k"}, "anon,5,nil,true,0,a,1,k"},
		{"given", map[string]any{"key": "k", "name": "n", "limit": 2.5, "count": 3, "on": false, "tags": []any{"x", "y"}, "any": []any{1}, "mode": "b", "sub": map[string]any{"x": 2}}, "n,2.5,3,false,2,b,2,k"},
		{"wrong type", map[string]any{"key": "k", "limit": "20"}, `hooks.vars.s.limit: s.lua wants a number, got a string ("20")`},
		{"not an integer", map[string]any{"key": "k", "count": 1.5}, "hooks.vars.s.count: s.lua wants an integer, got a number (1.5)"},
		{"not strings", map[string]any{"key": "k", "tags": []any{"x", 2}}, "hooks.vars.s.tags: s.lua wants a list of strings, got a list"},
		{"not one of", map[string]any{"key": "k", "mode": "c"}, `hooks.vars.s.mode: s.lua wants one of a, b, got "c"`},
		{"unknown key", map[string]any{"key": "k", "limt": 3}, "hooks.vars.s.limt: not a key s.lua reads (it reads any, count, key, limit, mode, name, on, sub, tags)"},
		{"required", map[string]any{}, "hooks.vars.s.key: required by s.lua (string)"},
		{"not a map", "x", `hooks.vars.s: s.lua wants a map, got a string ("x")`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"s.lua": schemaScript})
			cfg := testCfg(dir)
			cfg.Vars = map[string]any{"s": tt.section}
			rt, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("New: %v\nwant %s", err, tt.want)
				}
				return
			}
			defer rt.Close()
			env := &testEnv{rt: rt}
			if _, c := env.send("u", "v", ""); c.Content != tt.want {
				t.Errorf("read %q, want %q", c.Content, tt.want)
			}
		})
	}
}

func TestVarsSchemaBadDeclaration(t *testing.T) {
	for _, decl := range []string{`{x = "float"}`, `{x = {type = "number", default = "1"}}`, `{x = 3}`, `{[1] = "string"}`} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"s.lua": `tim.vars("s", ` + decl + `) return {message = function() end}`})
		if _, err := New(testCfg(dir), Options{Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "bad argument #2 to vars") {
			t.Errorf("%s: %v", decl, err)
		}
	}
}

func TestReloadRefusesVarsOfWrongType(t *testing.T) {
	env := newEnv(t, map[string]string{"s.lua": schemaScript, "other.lua": `return {join = function() end}`}, func(c *config.Hooks) {
		c.Vars = map[string]any{"s": map[string]any{"key": "v1"}}
	})
	bad := testCfg(env.dir)
	bad.Vars = map[string]any{"s": map[string]any{"key": "v2", "limit": "ten"}}
	err := env.rt.Reload(bad)
	if err == nil || !strings.Contains(err.Error(), `hooks.vars.s.limit: s.lua wants a number, got a string ("ten")`) {
		t.Fatalf("reload with a wrong type: %v", err)
	}
	if _, c := env.send("u", "v", ""); c.Content != "anon,5,nil,true,0,a,1,v1" {
		t.Errorf("after the refused reload the script reads %q, want the old vars", c.Content)
	}
	for _, st := range env.rt.Status() {
		if st.LastError != "" || st.Version != 1 {
			t.Errorf("refused reload changed the status: %+v", st)
		}
	}
	good := testCfg(env.dir)
	good.Vars = map[string]any{"s": map[string]any{"key": "v2", "limit": 10}}
	if err := env.rt.Reload(good); err != nil {
		t.Fatal(err)
	}
	if _, c := env.send("u", "v", ""); c.Content != "anon,10,nil,true,0,a,1,v2" {
		t.Errorf("after a good reload: %q", c.Content)
	}
	// A configuration that no longer loads the script is not held to its schema.
	without := testCfg(env.dir)
	without.Scripts = []string{"other.lua"}
	without.Vars = map[string]any{"s": "anything"}
	if err := env.rt.Reload(without); err != nil {
		t.Errorf("reload without the script: %v", err)
	}
}
