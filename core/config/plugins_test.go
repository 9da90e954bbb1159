package config

import (
	"strings"
	"testing"
	"time"
)

func TestCodecsValidate(t *testing.T) {
	f := false
	tests := []struct {
		name string
		c    Codecs
		want string // "" = valid
	}{
		{"empty", Codecs{}, ""},
		{"builtin", Codecs{Plugins: []CodecPlugin{{Name: "mqtt", Builtin: "codec-mqtt", Listen: []string{":1883"}}}}, ""},
		{"path", Codecs{Plugins: []CodecPlugin{{Name: "line_2", Path: "/bin/x"}}}, ""},
		{"bad name", Codecs{Plugins: []CodecPlugin{{Name: "MQTT", Builtin: "x"}}}, "name"},
		{"reserved", Codecs{Plugins: []CodecPlugin{{Name: "ws", Builtin: "x"}}}, "built-in protocol"},
		{"twice", Codecs{Plugins: []CodecPlugin{{Name: "a", Builtin: "x"}, {Name: "a", Path: "/y"}}}, "used twice"},
		{"neither", Codecs{Plugins: []CodecPlugin{{Name: "a"}}}, "exactly one"},
		{"both", Codecs{Plugins: []CodecPlugin{{Name: "a", Builtin: "x", Path: "/y"}}}, "exactly one"},
		{"nowhere", Codecs{Plugins: []CodecPlugin{{Name: "a", Builtin: "x", SharedPort: &f}}}, "served nowhere"},
		{"empty listen", Codecs{Plugins: []CodecPlugin{{Name: "a", Builtin: "x", Listen: []string{""}}}}, "empty address"},
		{"negative", Codecs{Plugins: []CodecPlugin{{Name: "a", Builtin: "x", BatchLinger: -time.Second}}}, "negative"},
		{"restart", Codecs{Restart: CodecRestart{MaxCrashes: -1}}, "negative"},
		{"ping interval", Codecs{Restart: CodecRestart{PingInterval: -time.Second}}, "negative"},
		{"ping misses", Codecs{Restart: CodecRestart{PingMisses: -1}}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCodecsWithDefaults(t *testing.T) {
	c := Codecs{Plugins: []CodecPlugin{{Name: "a", Builtin: "x"}}}.WithDefaults()
	if c.Restart.BackoffMin != DefaultCodecBackoffMin || c.Restart.MaxCrashes != DefaultCodecMaxCrashes ||
		c.Plugins[0].StartTimeout != DefaultCodecStart || !c.Plugins[0].OnSharedPort() ||
		c.Restart.PingInterval != time.Second || c.Restart.PingMisses != 3 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestParseCodecsSection(t *testing.T) {
	cfg, err := Parse([]byte(`
codecs:
  restart: {backoff_min: 50ms, max_crashes: 3}
  plugins:
    - name: mqtt
      builtin: codec-mqtt
      listen: [":1883"]
      options: {payload: text}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Codecs.Plugins[0]
	if p.Name != "mqtt" || p.Builtin != "codec-mqtt" || p.Listen[0] != ":1883" || p.Options["payload"] != "text" ||
		cfg.Codecs.Restart.BackoffMin != 50*time.Millisecond {
		t.Fatalf("parsed %+v", cfg.Codecs)
	}
}

func TestStoragePingKeys(t *testing.T) {
	tests := []struct {
		name     string
		s        Storage
		interval time.Duration
		misses   int
		err      string
	}{
		{"defaults", Storage{}, time.Second, 3, ""},
		{"set", Storage{PingInterval: 250 * time.Millisecond, PingMisses: 5}, 250 * time.Millisecond, 5, ""},
		{"negative interval", Storage{PingInterval: -time.Second}, -time.Second, 3, "ping_interval"},
		{"negative misses", Storage{PingMisses: -1}, time.Second, -1, "ping_misses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.s.Resolved()
			if r.PingInterval != tt.interval || r.PingMisses != tt.misses {
				t.Errorf("resolved ping_interval %v, ping_misses %d; want %v, %d", r.PingInterval, r.PingMisses, tt.interval, tt.misses)
			}
			err := tt.s.Validate()
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("Validate: %v, want %q", err, tt.err)
			}
		})
	}
}
