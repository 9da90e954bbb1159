package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// WebhookEvents are the event types a webhook endpoint can subscribe to (core/webhook;
// docs/webhooks.md).
var WebhookEvents = []string{"message.offline", "message.refused", "user.online", "user.offline"}

// Webhooks configures the events POSTed to push services and backends (the `webhooks:`
// section of conf/timgw.yaml; docs/webhooks.md). Off when no endpoint is configured.
type Webhooks struct {
	// Endpoints receive the events; none: webhooks are off.
	Endpoints []WebhookEndpoint `yaml:"endpoints"`
	// Retry says how often and how fast a failed delivery is tried again.
	Retry WebhookRetry `yaml:"retry"`
	// Queue is where events wait for delivery, across restarts.
	Queue WebhookQueue `yaml:"queue"`
	// GroupMaxMembers is the largest group whose offline members a message.offline
	// event lists; above it one event without offline_users is sent. Default 200.
	GroupMaxMembers int `yaml:"group_max_members"`
}

// WebhookEndpoint is one receiver of events.
type WebhookEndpoint struct {
	// URL is an http or https URL that gets one POST per event.
	URL string `yaml:"url"`
	// Secret is the HMAC-SHA256 key of the X-Timgw-Signature header ("": unsigned);
	// use ${ENV_VAR} to keep it out of the file.
	Secret string `yaml:"secret"`
	// Events are the event types sent to this endpoint (empty: all of them).
	Events []string `yaml:"events"`
	// Timeout bounds one delivery attempt (default 5s); a timeout is retried.
	Timeout time.Duration `yaml:"timeout"`
}

// Wants reports whether the endpoint subscribes to events of type typ.
func (e WebhookEndpoint) Wants(typ string) bool {
	return len(e.Events) == 0 || slices.Contains(e.Events, typ)
}

// WebhookRetry is the retry schedule: exponential backoff with jitter between
// BackoffMin and BackoffMax, MaxAttempts attempts in all.
type WebhookRetry struct {
	// MaxAttempts is how many times an event is tried per endpoint before it is dropped
	// (default 12).
	MaxAttempts int `yaml:"max_attempts"`
	// BackoffMin is the pause after the first failure (default 1s); it doubles per
	// failure up to BackoffMax (default 5m).
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// WebhookQueue is the on-disk queue of pending events.
type WebhookQueue struct {
	// Dir holds the pending events ("": <storage.dir>/webhooks, or a temporary
	// directory, lost at exit, when storage is off). A change needs a restart.
	Dir string `yaml:"dir"`
	// MaxEvents bounds the pending events; beyond it the oldest are dropped (default
	// 100000).
	MaxEvents int `yaml:"max_events"`
}

// DefaultWebhooks returns the webhooks section's defaults: no endpoint (off).
func DefaultWebhooks() Webhooks {
	return Webhooks{
		Retry:           WebhookRetry{MaxAttempts: 12, BackoffMin: time.Second, BackoffMax: 5 * time.Minute},
		Queue:           WebhookQueue{MaxEvents: 100000},
		GroupMaxMembers: 200,
	}
}

// Enabled reports whether any endpoint is configured.
func (w Webhooks) Enabled() bool { return len(w.Endpoints) > 0 }

// Resolved returns w with the endpoints' default timeout in place of zero.
func (w Webhooks) Resolved() Webhooks {
	eps := slices.Clone(w.Endpoints)
	for i := range eps {
		if eps[i].Timeout == 0 {
			eps[i].Timeout = 5 * time.Second
		}
	}
	w.Endpoints = eps
	return w
}

func (w Webhooks) validate() []error {
	var errs []error
	seen := map[string]bool{}
	for i, e := range w.Endpoints {
		u, err := url.Parse(e.URL)
		switch {
		case e.URL == "":
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].url: required", i))
		case err != nil:
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].url: %w", i, err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].url: %q is not an http or https URL", i, e.URL))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].url: %q has no host", i, e.URL))
		case seen[e.URL]:
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].url: %q is listed twice", i, e.URL))
		}
		seen[e.URL] = true
		for j, ev := range e.Events {
			if !slices.Contains(WebhookEvents, ev) {
				errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].events[%d]: %q is not one of %s", i, j, ev, strings.Join(WebhookEvents, ", ")))
			}
		}
		if e.Timeout < 0 {
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].timeout: %s is negative", i, e.Timeout))
		}
	}
	if w.Retry.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("webhooks.retry.max_attempts: %d must be >= 1", w.Retry.MaxAttempts))
	}
	if w.Retry.BackoffMin <= 0 || w.Retry.BackoffMax < w.Retry.BackoffMin {
		errs = append(errs, fmt.Errorf("webhooks.retry: backoff_min (%s) must be > 0 and <= backoff_max (%s)", w.Retry.BackoffMin, w.Retry.BackoffMax))
	}
	if w.Queue.MaxEvents < 1 {
		errs = append(errs, fmt.Errorf("webhooks.queue.max_events: %d must be >= 1", w.Queue.MaxEvents))
	}
	if w.GroupMaxMembers < 0 {
		errs = append(errs, fmt.Errorf("webhooks.group_max_members: %d is negative", w.GroupMaxMembers))
	}
	return errs
}
