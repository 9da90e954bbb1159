package integration

// End-to-end test of the event hook point (docs/webhooks.md, "Editing or suppressing
// events from Lua"): a Lua script adds fields to webhook events and suppresses others.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
)

// TestWebhookEventHook runs a script that adds extra.priority = "high" to message.offline
// events and drops user.online: the receiver gets the field in the signed body, and no
// user.online once every later event was delivered; the status and the metrics count the
// suppressed event.
func TestWebhookEventHook(t *testing.T) {
	t.Parallel()
	const secret = "wh-hook-secret"
	dir := t.TempDir()
	script := `return {event = function(ev)
  if ev.type == "user.online" then return "drop" end
  if ev.type == "message.offline" then
    ev.extra.priority = "high"
    ev.extra.receivers = #ev.offline_users
  end
end}`
	if err := os.WriteFile(filepath.Join(dir, "events.lua"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := newHookReceiver(t, nil)
	cfg := webhookConfig(t, "webhook-hook", rc, secret, 100*time.Millisecond)
	cfg.Set("hooks.dir", dir)
	cfg.Set("hooks.watch", false)
	cfg.Set("hooks.scripts", []any{"events.lua"})
	cfg.Write(t, byRename)
	g := startTestGateway(t, "webhook-hook", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	alice, bob := uid("whh-alice"), uid("whh-bob")

	a := g.login(t, epTCP, alice)
	r, err := a.ChatTo(bob, "are you there", wait)
	mustCode(t, "chat to offline bob", r, err, packet.StatusOffline)
	off := rc.waitFor(t, "message.offline for bob", func(d hookDelivery) bool {
		return d.Event.Type == "message.offline" && d.Event.Message != nil && d.Event.Message.To == bob
	})
	checkSigned(t, off, secret)
	var body struct {
		Extra map[string]any `json:"extra"`
	}
	if err := jsonUnmarshal(off.Body, &body); err != nil || body.Extra["priority"] != "high" || body.Extra["receivers"] != 1.0 {
		t.Errorf("message.offline event %s: want extra {priority: high, receivers: 1} (%v)", off.Body, err)
	}
	if off.Event.Message.Content != "are you there" || off.Event.Message.From != alice {
		t.Errorf("message.offline event %s: the event's own fields changed", off.Body)
	}

	a.Close()
	rc.waitFor(t, "user.offline of alice", func(d hookDelivery) bool {
		return d.Event.Type == "user.offline" && d.Event.User == alice
	})
	eventually(t, "the user.online event is counted as suppressed and nothing is pending", func() error {
		st, err := adm.webhooks()
		if err != nil {
			return err
		}
		if st.Suppressed < 1 || st.Pending != 0 {
			return fmt.Errorf("parts.webhooks %+v", st)
		}
		ms, err := adm.metrics()
		if err != nil {
			return err
		}
		if s := `timgw_webhook_events_suppressed_total{type="user.online"}`; ms[s] < 1 {
			return fmt.Errorf("%s = %v", s, ms[s])
		}
		return nil
	})
	for _, d := range rc.all() {
		if d.Event.Type == "user.online" {
			t.Errorf("user.online delivered although the hook drops it: %s", d.Body)
		}
		if d.Event.Type == "user.offline" && bytes.Contains(d.Body, []byte(`"extra"`)) {
			t.Errorf("user.offline got extra fields it was not given: %s", d.Body)
		}
	}
}
