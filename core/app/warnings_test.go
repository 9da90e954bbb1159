package app

import (
	"strings"
	"testing"

	"github.com/timgw/timgw/core/config"
)

func TestRisks(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *config.Config)
		want []string // a word of each risk, in order
	}{
		{"shipped defaults", func(*config.Config) {}, []string{"api.keys", "admin.keys", "auth.mode"}},
		{"own keys, loopback", func(c *config.Config) {
			c.API.Keys, c.Admin.Keys, c.Listen = []string{"k"}, []string{"a"}, "127.0.0.1:8888"
		}, nil},
		{"own keys, localhost and ::1", func(c *config.Config) {
			c.API.Keys, c.Admin.Keys, c.Listen = []string{"k"}, []string{"a"}, "localhost:8888"
			c.Listeners = []config.Listener{{Protocol: "ws", Address: "[::1]:9000"}}
		}, nil},
		{"extra listener beyond loopback", func(c *config.Config) {
			c.API.Keys, c.Admin.Keys, c.Listen = []string{"k"}, []string{"a"}, "127.0.0.1:8888"
			c.Listeners = []config.Listener{{Protocol: "tcp", Address: "0.0.0.0:9000"}}
		}, []string{"auth.mode"}},
		{"codec port beyond loopback", func(c *config.Config) {
			c.API.Keys, c.Admin.Keys, c.Listen = []string{"k"}, []string{"a"}, "127.0.0.1:8888"
			c.Codecs.Plugins[0].Listen = []string{":1883"}
		}, []string{"auth.mode"}},
		{"jwt on all interfaces", func(c *config.Config) {
			c.API.Keys, c.Admin.Keys = []string{"k"}, []string{"a"}
			c.Auth.Mode, c.Auth.JWT.Secret = "jwt", "s"
		}, nil},
		{"dev admin key among own ones", func(c *config.Config) {
			c.API.Keys, c.Admin.Keys, c.Listen = []string{"k"}, []string{"a", "dev-admin-key"}, "127.0.0.1:1"
		}, []string{"admin.keys"}},
		{"dev admin key used as API key", func(c *config.Config) {
			c.API.Keys, c.Admin.Keys, c.Listen = []string{"dev-admin-key"}, []string{"a"}, "127.0.0.1:1"
		}, []string{"api.keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TIMGW_API_KEY", "")
			t.Setenv("TIMGW_ADMIN_KEY", "")
			c := config.Defaults()
			tt.edit(&c)
			got := risks(&c)
			if len(got) != len(tt.want) {
				t.Fatalf("risks = %+v, want %d: %v", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i].msg, w) {
					t.Errorf("risk %d = %q, want it about %s", i, got[i].msg, w)
				}
			}
		})
	}
}
