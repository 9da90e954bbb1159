package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, c *Config)
	}{
		{"empty is defaults", "", "", func(t *testing.T, c *Config) {
			if c.Listen != ":8888" || c.Auth.Mode != "open" || c.Limits.IdleTimeout != 3*time.Minute {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{"durations", "limits: {idle_timeout: 90s, sniff_timeout: 2s}", "", func(t *testing.T, c *Config) {
			if c.Limits.IdleTimeout != 90*time.Second || c.Limits.SniffTimeout != 2*time.Second {
				t.Errorf("durations: %+v", c.Limits)
			}
		}},
		{"unknown key", "listn: :1", "field listn not found", nil},
		{"unknown nested key", "limits: {max_frame: 1}", "field max_frame not found", nil},
		{"syntax error", "listen: [", "parse", nil},
		{"bad mode", "auth: {mode: ldap}", "auth.mode", nil},
		{"jwt needs secret", "auth: {mode: jwt}", "auth.jwt.secret", nil},
		{"bad listener", "listeners: [{protocol: smtp, address: ':25'}]", "listeners[0].protocol", nil},
		{"tls listener needs cert", "listeners: [{protocol: tls, address: ':1'}]", "needs tls.cert", nil},
		{"half tls", "tls: {cert: a.pem}", "cert and key", nil},
		{"content over frame", "limits: {max_frame_bytes: 10, max_content_bytes: 20}", "max_content_bytes", nil},
		{"bad level", "log: {level: loud}", "log.level", nil},
		{"several errors at once", "auth: {mode: x}\nlog: {format: xml}", "log.format", nil},
		{"shutdown defaults", "", "", func(t *testing.T, c *Config) {
			if c.Shutdown.Drain != 5*time.Second || c.Shutdown.CloseGrace != 5*time.Second {
				t.Errorf("shutdown defaults: %+v", c.Shutdown)
			}
		}},
		{"drain off", "shutdown: {drain: 0s}", "", func(t *testing.T, c *Config) {
			if c.Shutdown.Drain != 0 || c.Shutdown.CloseGrace != 5*time.Second {
				t.Errorf("shutdown: %+v", c.Shutdown)
			}
		}},
		{"negative drain", "shutdown: {drain: -1s}", "shutdown.drain", nil},
		{"zero close grace", "shutdown: {close_grace: 0s}", "shutdown.close_grace", nil},
		{"close grace too long", "shutdown: {close_grace: 11m}", "shutdown.close_grace", nil},
		{"per-IP limits", "limits: {max_connections_per_ip: 20, connection_rate_per_ip: 0.5, connection_burst_per_ip: 4}", "", func(t *testing.T, c *Config) {
			if c.Limits.MaxConnectionsPerIP != 20 || c.Limits.ConnectionRatePerIP != 0.5 || c.Limits.ConnectionBurst() != 4 {
				t.Errorf("limits = %+v", c.Limits)
			}
		}},
		{"burst defaults to the rate", "limits: {connection_rate_per_ip: 2.5}", "", func(t *testing.T, c *Config) {
			if c.Limits.ConnectionBurst() != 3 {
				t.Errorf("burst = %d, want 3", c.Limits.ConnectionBurst())
			}
		}},
		{"negative per-IP cap", "limits: {max_connections_per_ip: -1}", "max_connections_per_ip must be >= 0", nil},
		{"negative rate", "limits: {connection_rate_per_ip: -2}", "limits.connection_rate_per_ip: -2 must be", nil},
		{"burst without rate", "limits: {connection_burst_per_ip: 5}", "connection_rate_per_ip is 0", nil},
		{"negative burst", "limits: {connection_rate_per_ip: 1, connection_burst_per_ip: -1}", "limits.connection_burst_per_ip: -1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("TIMGW_TEST_KEY", "k1")
	c, err := Parse([]byte("api: {keys: [\"${TIMGW_TEST_KEY}\", \"${TIMGW_TEST_UNSET:-fallback}\"]}"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.API.Keys) != 2 || c.API.Keys[0] != "k1" || c.API.Keys[1] != "fallback" {
		t.Fatalf("keys = %v", c.API.Keys)
	}
}

func TestShippedConfigParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "conf", "timgw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8888" {
		t.Errorf("shipped listen = %q", c.Listen)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
