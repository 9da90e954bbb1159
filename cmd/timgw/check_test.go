package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/config"
)

func TestSharedProtocols(t *testing.T) {
	off := false
	cases := []struct {
		name string
		edit func(c *config.Config)
		want []string
	}{
		{"plain", func(*config.Config) {}, []string{"tcp", "ws", "http"}},
		{"tls", func(c *config.Config) { c.TLS = config.TLS{Cert: "c.pem", Key: "k.pem"} },
			[]string{"tcp", "ws", "http", "tls+tcp", "wss", "https"}},
		{"codec on the shared port and one on its own port", func(c *config.Config) {
			c.Codecs.Plugins = []config.CodecPlugin{{Name: "mqtt"}, {Name: "line", SharedPort: &off, Listen: []string{":7000"}}}
		}, []string{"tcp", "ws", "http", "mqtt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Codecs.Plugins = nil // the defaults run the MQTT plugin; each case sets its own
			tc.edit(&cfg)
			if got := sharedProtocols(&cfg); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDescribeKeys(t *testing.T) {
	cases := []struct {
		api, admin []string
		want       string
		dev        bool
	}{
		{[]string{"k1", "k2"}, []string{"a"}, "2 API, 1 admin", false},
		{[]string{"dev-api-key"}, []string{"a"}, "1 API, 1 admin (development keys dev-api-key:", true},
		{nil, []string{"dev-admin-key"}, "0 API, 1 admin (development keys dev-admin-key:", true},
	}
	for _, tc := range cases {
		cfg := config.Defaults()
		cfg.API.Keys, cfg.Admin.Keys = tc.api, tc.admin
		got := describeKeys(&cfg)
		if !strings.HasPrefix(got, tc.want) || strings.Contains(got, "development") != tc.dev {
			t.Errorf("describeKeys(%q, %q) = %q, want it to start with %q", tc.api, tc.admin, got, tc.want)
		}
	}
}

func TestFindCommand(t *testing.T) {
	cases := []struct {
		cmd  []string
		want string // in the error; "" none
	}{
		{[]string{"go"}, ""},
		{nil, "storage.command: empty"},
		{[]string{"/no/such/plugin"}, `storage.command: plugin command: exec: "/no/such/plugin"`},
	}
	for _, tc := range cases {
		err := findCommand("storage.command", tc.cmd)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("findCommand(%q) = %v, want %q", tc.cmd, err, tc.want)
		}
	}
}

func TestDescribeWebhooks(t *testing.T) {
	for _, tc := range []struct {
		w    config.Webhooks
		want string
	}{
		{config.Webhooks{}, "off"},
		{config.Webhooks{Endpoints: []config.WebhookEndpoint{{URL: "https://push.example/hook?token=x", Secret: "s"}}},
			"https://push.example/hook (all events, signed)"},
		{config.Webhooks{Endpoints: []config.WebhookEndpoint{{URL: "http://a/", Events: []string{"message.offline", "user.online"}}, {URL: "http://b/"}}},
			"http://a/ (message.offline,user.online, unsigned); http://b/ (all events, unsigned)"},
	} {
		if got := describeWebhooks(tc.w); got != tc.want {
			t.Errorf("describeWebhooks = %q, want %q", got, tc.want)
		}
	}
}
