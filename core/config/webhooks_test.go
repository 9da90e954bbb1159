package config

import (
	"strings"
	"testing"
	"time"
)

func TestWebhooksConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, w Webhooks)
	}{
		{"off by default", "", "", func(t *testing.T, w Webhooks) {
			if w.Enabled() || w.Retry.MaxAttempts != 12 || w.Retry.BackoffMin != time.Second ||
				w.Retry.BackoffMax != 5*time.Minute || w.Queue.MaxEvents != 100000 || w.GroupMaxMembers != 200 {
				t.Errorf("defaults: %+v", w)
			}
		}},
		{"an endpoint keeps the other defaults", "webhooks: {endpoints: [{url: 'https://x.example/h'}], retry: {max_attempts: 3}}", "", func(t *testing.T, w Webhooks) {
			r := w.Resolved()
			if !w.Enabled() || w.Retry.MaxAttempts != 3 || w.Retry.BackoffMin != time.Second || r.Endpoints[0].Timeout != 5*time.Second {
				t.Errorf("section: %+v", r)
			}
			if !r.Endpoints[0].Wants("user.online") || !r.Endpoints[0].Wants("message.offline") {
				t.Error("an endpoint without events wants them all")
			}
		}},
		{"events filter", "webhooks: {endpoints: [{url: 'http://x/h', events: [user.online]}]}", "", func(t *testing.T, w Webhooks) {
			if e := w.Endpoints[0]; !e.Wants("user.online") || e.Wants("user.offline") {
				t.Errorf("wants: %+v", e)
			}
		}},
		{"bad scheme", "webhooks: {endpoints: [{url: 'ftp://x/h'}]}", "webhooks.endpoints[0].url: \"ftp://x/h\" is not an http or https URL", nil},
		{"no host", "webhooks: {endpoints: [{url: 'http:///h'}]}", "has no host", nil},
		{"missing url", "webhooks: {endpoints: [{secret: s}]}", "webhooks.endpoints[0].url: required", nil},
		{"duplicate url", "webhooks: {endpoints: [{url: 'http://x/h'}, {url: 'http://x/h'}]}", "webhooks.endpoints[1].url: \"http://x/h\" is listed twice", nil},
		{"unknown event", "webhooks: {endpoints: [{url: 'http://x/h', events: [message.sent]}]}", "webhooks.endpoints[0].events[0]: \"message.sent\" is not one of", nil},
		{"negative timeout", "webhooks: {endpoints: [{url: 'http://x/h', timeout: -1s}]}", "timeout", nil},
		{"no attempts", "webhooks: {retry: {max_attempts: 0}}", "webhooks.retry.max_attempts", nil},
		{"backoff order", "webhooks: {retry: {backoff_min: 1m, backoff_max: 1s}}", "webhooks.retry: backoff_min", nil},
		{"queue bound", "webhooks: {queue: {max_events: 0}}", "webhooks.queue.max_events", nil},
		{"group bound", "webhooks: {group_max_members: -1}", "webhooks.group_max_members", nil},
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
			tt.check(t, c.Webhooks)
		})
	}
}
