package config

import (
	"strings"
	"testing"
	"time"
)

func TestWebhooksDefaultsAndEndpoints(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Webhooks; w.Enabled() || w.Retry.MaxAttempts != 12 || w.Retry.BackoffMin != time.Second ||
		w.Retry.BackoffMax != 5*time.Minute || w.Queue.MaxEvents != 100000 || w.GroupMaxMembers != 200 {
		t.Errorf("defaults: %+v", w)
	}
	c, err = Parse([]byte("webhooks: {endpoints: [{url: 'https://x.example/h'}, {url: 'http://y/h', events: [user.online]}], retry: {max_attempts: 3}}"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Webhooks.Resolved()
	if !r.Enabled() || r.Retry.MaxAttempts != 3 || r.Retry.BackoffMin != time.Second || r.Endpoints[0].Timeout != 5*time.Second {
		t.Errorf("a section with endpoints keeps the other defaults: %+v", r)
	}
	if all, one := r.Endpoints[0], r.Endpoints[1]; !all.Wants("user.online") || !all.Wants("message.offline") ||
		!one.Wants("user.online") || one.Wants("user.offline") {
		t.Errorf("events filters: %+v", r.Endpoints)
	}
}

func TestWebhooksInvalid(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"webhooks: {endpoints: [{url: 'ftp://x/h'}]}", "webhooks.endpoints[0].url: \"ftp://x/h\" is not an http or https URL"},
		{"webhooks: {endpoints: [{url: 'http:///h'}]}", "has no host"},
		{"webhooks: {endpoints: [{secret: s}]}", "webhooks.endpoints[0].url: required"},
		{"webhooks: {endpoints: [{url: 'http://x/h'}, {url: 'http://x/h'}]}", "webhooks.endpoints[1].url: \"http://x/h\" is listed twice"},
		{"webhooks: {endpoints: [{url: 'http://x/h', events: [message.sent]}]}", "webhooks.endpoints[0].events[0]: \"message.sent\" is not one of"},
		{"webhooks: {endpoints: [{url: 'http://x/h', timeout: -1s}]}", "webhooks.endpoints[0].timeout"},
		{"webhooks: {retry: {max_attempts: 0}}", "webhooks.retry.max_attempts"},
		{"webhooks: {retry: {backoff_min: 1m, backoff_max: 1s}}", "webhooks.retry: backoff_min"},
		{"webhooks: {queue: {max_events: 0}}", "webhooks.queue.max_events"},
		{"webhooks: {group_max_members: -1}", "webhooks.group_max_members"},
	} {
		if _, err := Parse([]byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.yaml, err, tt.want)
		}
	}
}
