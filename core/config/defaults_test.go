package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/timgw/timgw/conf"
)

// sections returns the top-level keys of the embedded conf/timgw.yaml with their YAML
// text, in file order.
func sections(t *testing.T) (keys []string, text map[string]string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(conf.Default, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	text = map[string]string{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i].Value
		b, err := yaml.Marshal(&yaml.Node{Kind: yaml.MappingNode, Content: root.Content[i : i+2]})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		text[k] = string(b)
	}
	return keys, text
}

// documented decodes the embedded conf/timgw.yaml on its own, into a zero Config: the
// documented defaults, independent of Defaults.
func documented(t *testing.T) Config {
	t.Helper()
	var c Config
	if err := yaml.Unmarshal(expandEnv(conf.Default), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// sectionValue returns the field of c that the top-level key names.
func sectionValue(t *testing.T, c *Config, key string) any {
	t.Helper()
	f, ok := fieldByKey(reflect.ValueOf(c).Elem(), key)
	if !ok {
		t.Fatalf("no Config field for key %q", key)
	}
	return f.Interface()
}

// TestDefaultsAreTheEmbeddedFile checks that the embedded conf/timgw.yaml decodes, is
// valid, and documents every top-level section of Config.
func TestDefaultsAreTheEmbeddedFile(t *testing.T) {
	d, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("embedded defaults do not validate: %v", err)
	}
	if doc := documented(t); !reflect.DeepEqual(d, doc) || !reflect.DeepEqual(Defaults(), doc) {
		t.Errorf("Defaults() = %+v\nwant conf/timgw.yaml %+v", d, doc)
	}
	keys, _ := sections(t)
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("yaml"), ",")
		found := false
		for _, k := range keys {
			found = found || k == name
		}
		if !found {
			t.Errorf("section %q (Config.%s) is not in conf/timgw.yaml", name, ct.Field(i).Name)
		}
	}
}

// TestSectionOmittedTakesDefaults drops each top-level section of the shipped file in
// turn and checks that the section then equals the documented default.
func TestSectionOmittedTakesDefaults(t *testing.T) {
	t.Setenv("TIMGW_API_KEY", "")
	t.Setenv("TIMGW_ADMIN_KEY", "")
	want := documented(t)
	keys, text := sections(t)
	for _, omit := range keys {
		t.Run(omit, func(t *testing.T) {
			var b strings.Builder
			for _, k := range keys {
				if k != omit {
					b.WriteString(text[k])
				}
			}
			got, err := Parse([]byte(b.String()))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := sectionValue(t, got, omit), sectionValue(t, &want, omit); !reflect.DeepEqual(g, w) {
				t.Errorf("%s omitted = %+v\nwant the default %+v", omit, g, w)
			}
		})
	}
}

// TestOnlyOneKey parses files that set one key and checks that every other key keeps
// its documented default.
func TestOnlyOneKey(t *testing.T) {
	t.Setenv("TIMGW_API_KEY", "")
	t.Setenv("TIMGW_ADMIN_KEY", "")
	def := documented(t)
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *Config)
	}{
		{"storage only", "storage: {plugin: none}", func(t *testing.T, c *Config) {
			if c.Storage.Plugin != StorageNone || c.Storage.Dir != "data" || c.Storage.WriteTimeout != 5*time.Second {
				t.Errorf("storage = %+v", c.Storage)
			}
			if !reflect.DeepEqual(c.API, def.API) || len(c.API.Keys) != 1 || c.API.Keys[0] != "dev-api-key" {
				t.Errorf("api = %+v, want the default %+v", c.API, def.API)
			}
			if !reflect.DeepEqual(c.Admin.Keys, []string{"dev-admin-key"}) {
				t.Errorf("admin.keys = %v", c.Admin.Keys)
			}
			if len(c.Codecs.Plugins) != 1 || c.Codecs.Plugins[0].Name != "mqtt" {
				t.Errorf("codecs.plugins = %+v, want the default mqtt", c.Codecs.Plugins)
			}
		}},
		{"nested key keeps its siblings", "limits: {max_connections: 7}", func(t *testing.T, c *Config) {
			w := def.Limits
			w.MaxConnections = 7
			if c.Limits != w {
				t.Errorf("limits = %+v, want %+v", c.Limits, w)
			}
		}},
		{"deep key keeps its siblings", "storage: {mongo: {database: other}}", func(t *testing.T, c *Config) {
			if c.Storage.Mongo.Database != "other" || c.Storage.Mongo.URI != def.Storage.Mongo.URI || c.Storage.Mongo.Timeout != 10*time.Second {
				t.Errorf("storage.mongo = %+v", c.Storage.Mongo)
			}
		}},
		{"list replaces as a whole", "api: {keys: [k1, k2]}", func(t *testing.T, c *Config) {
			if !reflect.DeepEqual(c.API.Keys, []string{"k1", "k2"}) || c.API.SystemUser != "system" {
				t.Errorf("api = %+v", c.API)
			}
		}},
		{"empty list clears", "codecs: {plugins: []}", func(t *testing.T, c *Config) {
			if len(c.Codecs.Plugins) != 0 || c.Codecs.Restart != def.Codecs.Restart {
				t.Errorf("codecs = %+v", c.Codecs)
			}
		}},
		{"map replaces as a whole", "hooks: {vars: {routing: {bot_user: b}}}", func(t *testing.T, c *Config) {
			want := map[string]any{"routing": map[string]any{"bot_user": "b"}}
			if !reflect.DeepEqual(c.Hooks.Vars, want) {
				t.Errorf("hooks.vars = %+v, want %+v (no default moderation entry)", c.Hooks.Vars, want)
			}
			if !reflect.DeepEqual(c.Hooks.Scripts, def.Hooks.Scripts) || c.Hooks.Timeout != def.Hooks.Timeout {
				t.Errorf("hooks siblings changed: %+v", c.Hooks)
			}
		}},
		{"null section keeps the defaults", "hooks:\nlimits:\n", func(t *testing.T, c *Config) {
			if !reflect.DeepEqual(c.Hooks, def.Hooks) || c.Limits != def.Limits {
				t.Errorf("hooks = %+v, limits = %+v", c.Hooks, c.Limits)
			}
		}},
		{"comments only is the defaults", "# nothing\n", func(t *testing.T, c *Config) {
			if !reflect.DeepEqual(*c, def) {
				t.Errorf("got %+v\nwant %+v", *c, def)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestDefaultsReadEnvironment checks that the ${ENV} references of the embedded file are
// expanded: TIMGW_API_KEY replaces the development key.
func TestDefaultsReadEnvironment(t *testing.T) {
	t.Setenv("TIMGW_API_KEY", "from-env")
	c, err := Parse([]byte("storage: {plugin: none}"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.API.Keys, []string{"from-env"}) {
		t.Errorf("api.keys = %v, want [from-env]", c.API.Keys)
	}
}
