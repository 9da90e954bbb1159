package integration

// End-to-end tests of webhooks (docs/webhooks.md): the gateway POSTs signed events to a
// receiver started by the test, retries what the receiver refuses, and keeps what it could
// not deliver across a restart.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
)

// hookEvent is a webhook event as the receiver decodes it.
type hookEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Time    int64  `json:"time"`
	Node    string `json:"node"`
	User    string `json:"user"`
	Message *struct {
		ID         string `json:"id"`
		From       string `json:"from"`
		To         string `json:"to"`
		GroupID    string `json:"groupId"`
		ChatType   int    `json:"chatType"`
		Content    string `json:"content"`
		CreateTime int64  `json:"createTime"`
		Seq        int64  `json:"seq"`
	} `json:"message"`
	OfflineUsers []string `json:"offline_users"`
	Code         int      `json:"code"`
	Reason       string   `json:"reason"`
}

// hookDelivery is one POST the receiver got and the status it answered.
type hookDelivery struct {
	Header http.Header
	Body   []byte
	Event  hookEvent
	Status int
}

// hookReceiver is an HTTP endpoint recording webhook POSTs. answer chooses the status of
// the n-th request (from 1); nil: 200.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []hookDelivery
	answer func(n int, d hookDelivery) int
}

func newHookReceiver(t *testing.T, answer func(n int, d hookDelivery) int) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := hookDelivery{Header: r.Header.Clone(), Body: body, Status: http.StatusOK}
		if err := json.Unmarshal(body, &d.Event); err != nil {
			d.Status = http.StatusBadRequest
		}
		rc.mu.Lock()
		n := len(rc.got) + 1
		if rc.answer != nil && d.Status == http.StatusOK {
			d.Status = rc.answer(n, d)
		}
		rc.got = append(rc.got, d)
		rc.mu.Unlock()
		w.WriteHeader(d.Status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// all returns the deliveries so far.
func (rc *hookReceiver) all() []hookDelivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// waitFor waits for a delivery that match accepts and returns it.
func (rc *hookReceiver) waitFor(t *testing.T, what string, match func(d hookDelivery) bool) hookDelivery {
	t.Helper()
	var found hookDelivery
	eventually(t, "webhook: "+what, func() error {
		for _, d := range rc.all() {
			if match(d) {
				found = d
				return nil
			}
		}
		var seen []string
		for _, d := range rc.all() {
			seen = append(seen, fmt.Sprintf("%s %s (HTTP %d)", d.Event.Type, d.Event.ID, d.Status))
		}
		return fmt.Errorf("not received; got: %v", seen)
	})
	return found
}

// checkSigned checks the headers of a delivery and its signature, computed here
// independently of the gateway's code.
func checkSigned(t *testing.T, d hookDelivery, secret string) {
	t.Helper()
	h := d.Header
	if h.Get("Content-Type") != "application/json" || h.Get("X-Timgw-Event") != d.Event.Type ||
		h.Get("X-Timgw-Event-Id") != d.Event.ID || h.Get("Idempotency-Key") != d.Event.ID || d.Event.ID == "" {
		t.Errorf("headers %v of event %s", h, d.Body)
	}
	ts := h.Get("X-Timgw-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 10*time.Minute {
		t.Errorf("X-Timgw-Timestamp %q is not the time in unix seconds", ts)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(d.Body)))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); h.Get("X-Timgw-Signature") != want {
		t.Errorf("X-Timgw-Signature %q, want %q", h.Get("X-Timgw-Signature"), want)
	}
}

// webhookConfig is a live configuration POSTing every event to rc, with the given retry
// backoff.
func webhookConfig(t *testing.T, name string, rc *hookReceiver, secret string, backoff time.Duration) *liveConfig {
	t.Helper()
	cfg := newLiveConfig(t, name, gwConfig{})
	cfg.Set("webhooks", map[string]any{
		"endpoints": []any{map[string]any{"url": rc.URL + "/hook", "secret": secret}},
		"retry":     map[string]any{"backoff_min": backoff.String(), "backoff_max": backoff.String()},
	})
	cfg.Write(t, byRename)
	return cfg
}

// webhookStatus is parts.webhooks of /admin/status.
type webhookStatus struct {
	Endpoints int    `json:"endpoints"`
	Pending   int    `json:"pending"`
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`
	Dropped   uint64 `json:"dropped"`
	// Suppressed counts the events the Lua event hook dropped.
	Suppressed uint64 `json:"suppressed"`
}

func (a *adminClient) webhooks() (webhookStatus, error) {
	var doc struct {
		Parts struct {
			Webhooks *webhookStatus `json:"webhooks"`
		} `json:"parts"`
	}
	r, err := a.do(http.MethodGet, "/admin/status")
	if err != nil {
		return webhookStatus{}, err
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil || doc.Parts.Webhooks == nil {
		return webhookStatus{}, fmt.Errorf("/admin/status has no parts.webhooks (%v): %.500s", err, r.Body)
	}
	return *doc.Parts.Webhooks, nil
}

// TestWebhookEvents drives the four event types through the gateway: user.online at
// login, message.offline for a chat stored for an offline user (10001), message.refused
// for a chat the moderation rule refuses (10027), user.offline when the connection
// closes; every POST signed. It checks the metrics and the admin status too.
func TestWebhookEvents(t *testing.T) {
	t.Parallel()
	const secret = "wh-secret"
	rc := newHookReceiver(t, nil)
	cfg := webhookConfig(t, "webhook", rc, secret, 100*time.Millisecond)
	cfg.Set("hooks.vars.moderation.action", "reject")
	cfg.Write(t, byRename)
	g := startTestGateway(t, "webhook", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	alice, bob := uid("wh-alice"), uid("wh-bob")

	a := g.login(t, epTCP, alice)
	on := rc.waitFor(t, "user.online of alice", func(d hookDelivery) bool {
		return d.Event.Type == "user.online" && d.Event.User == alice
	})
	checkSigned(t, on, secret)
	if on.Event.Node != "" || on.Event.Time == 0 {
		t.Errorf("user.online event %s: want node \"\" and a time", on.Body)
	}

	r, err := a.ChatTo(bob, "are you there", wait)
	mustCode(t, "chat to offline bob", r, err, packet.StatusOffline)
	off := rc.waitFor(t, "message.offline for bob", func(d hookDelivery) bool {
		return d.Event.Type == "message.offline" && d.Event.Message != nil && d.Event.Message.To == bob
	})
	checkSigned(t, off, secret)
	m := off.Event.Message
	if !slices.Equal(off.Event.OfflineUsers, []string{bob}) || m.From != alice || m.Content != "are you there" ||
		m.ChatType != 2 || m.Seq < 1 || m.ID == "" || m.CreateTime == 0 {
		t.Errorf("message.offline event %s", off.Body)
	}

	r, err = a.ChatTo(bob, "buy my badword", wait)
	mustCode(t, "chat with a banned word", r, err, packet.StatusRejected)
	ref := rc.waitFor(t, "message.refused", func(d hookDelivery) bool {
		return d.Event.Type == "message.refused" && d.Event.Message != nil && d.Event.Message.From == alice
	})
	checkSigned(t, ref, secret)
	if ref.Event.Code != int(packet.StatusRejected) || ref.Event.Reason == "" || ref.Event.Message.Content != "buy my badword" {
		t.Errorf("message.refused event %s", ref.Body)
	}

	a.Close()
	gone := rc.waitFor(t, "user.offline of alice", func(d hookDelivery) bool {
		return d.Event.Type == "user.offline" && d.Event.User == alice
	})
	checkSigned(t, gone, secret)

	ids := map[string]bool{}
	for _, d := range rc.all() {
		if ids[d.Event.ID] {
			t.Errorf("event id %s delivered twice (no retry was needed)", d.Event.ID)
		}
		ids[d.Event.ID] = true
	}
	eventually(t, "metrics and status count the deliveries", func() error {
		st, err := adm.webhooks()
		if err != nil {
			return err
		}
		if st.Endpoints != 1 || st.Delivered < 4 || st.Pending != 0 || st.Failed != 0 {
			return fmt.Errorf("parts.webhooks %+v", st)
		}
		ms, err := adm.metrics()
		if err != nil {
			return err
		}
		for _, s := range []string{`timgw_webhook_events_total{type="message.offline"}`, `timgw_webhook_events_total{type="message.refused"}`,
			`timgw_webhook_events_total{type="user.online"}`, `timgw_webhook_events_total{type="user.offline"}`} {
			if ms[s] < 1 {
				return fmt.Errorf("%s = %v", s, ms[s])
			}
		}
		if ms[`timgw_webhook_deliveries_total{result="delivered"}`] < 4 {
			return fmt.Errorf("delivered = %v", ms[`timgw_webhook_deliveries_total{result="delivered"}`])
		}
		if _, ok := ms["timgw_webhook_pending"]; !ok {
			return fmt.Errorf("no timgw_webhook_pending")
		}
		return nil
	})
}

// TestWebhookRetry has the receiver answer 500 to the first two attempts: the event is
// delivered by the third, with the same event id and body each time.
func TestWebhookRetry(t *testing.T) {
	t.Parallel()
	rc := newHookReceiver(t, func(n int, _ hookDelivery) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	cfg := webhookConfig(t, "webhook-retry", rc, "s", 50*time.Millisecond)
	cfg.Set("webhooks.endpoints", []any{map[string]any{"url": rc.URL, "secret": "s", "events": []any{"user.online"}}})
	cfg.Write(t, byRename)
	g := startTestGateway(t, "webhook-retry", gwConfig{File: cfg.Path})
	alice := uid("whr-alice")
	g.login(t, epWS, alice)
	ok := rc.waitFor(t, "user.online delivered", func(d hookDelivery) bool { return d.Status == http.StatusOK })
	got := rc.all()
	if len(got) < 3 || got[0].Status != 500 || got[1].Status != 500 {
		t.Fatalf("deliveries %d, want two 500s then the 200", len(got))
	}
	for _, d := range got[:3] {
		if d.Event.ID != ok.Event.ID || string(d.Body) != string(ok.Body) || d.Header.Get("Idempotency-Key") != ok.Event.ID {
			t.Errorf("attempt %s differs from the delivered %s", d.Body, ok.Body)
		}
		checkSigned(t, d, "s")
	}
	if ok.Event.User != alice {
		t.Errorf("delivered %s, want alice's user.online", ok.Body)
	}
}

// TestWebhookQueueAcrossRestart stops the gateway while the receiver is down and the
// events are waiting in the queue; after a restart, with the receiver up, they are
// delivered (the one attempted before the stop with the same id and body).
func TestWebhookQueueAcrossRestart(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	rc := newHookReceiver(t, func(int, hookDelivery) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	// A long backoff: nothing is retried before the restart.
	cfg := webhookConfig(t, "webhook-restart", rc, "s", time.Hour)
	g1 := startStorageGateway(t, "webhook-restart-1", cfg.Path)
	alice, bob := uid("whq-alice"), uid("whq-bob")
	a := g1.login(t, epTCP, alice)
	r, err := a.ChatTo(bob, "while you were out", wait)
	mustCode(t, "chat to offline bob", r, err, packet.StatusOffline)
	online := rc.waitFor(t, "a failed attempt of user.online", func(d hookDelivery) bool {
		return d.Event.Type == "user.online" && d.Status == http.StatusServiceUnavailable
	})
	a.Close()
	// The endpoint cools down after the failure: the other events wait in the queue.
	adm1 := newAdminClient(t, g1)
	eventually(t, "three events queued", func() error {
		st, err := adm1.webhooks()
		if err == nil && st.Pending != 3 {
			err = fmt.Errorf("parts.webhooks %+v", st)
		}
		return err
	})
	stopGateway(t, g1)

	down.Store(false)
	g2 := startStorageGateway(t, "webhook-restart-2", cfg.Path)
	got := rc.waitFor(t, "user.online delivered after the restart", func(d hookDelivery) bool {
		return d.Event.ID == online.Event.ID && d.Status == http.StatusOK
	})
	if string(got.Body) != string(online.Body) {
		t.Errorf("after the restart %s, before %s", got.Body, online.Body)
	}
	checkSigned(t, got, "s")
	off := rc.waitFor(t, "message.offline delivered after the restart", func(d hookDelivery) bool {
		return d.Event.Type == "message.offline" && d.Status == http.StatusOK
	})
	if m := off.Event.Message; m == nil || m.From != alice || m.To != bob || m.Content != "while you were out" {
		t.Errorf("message.offline after the restart: %s", off.Body)
	}
	// user.offline, emitted when alice left before the stop, was kept too.
	rc.waitFor(t, "user.offline delivered after the restart", func(d hookDelivery) bool {
		return d.Event.Type == "user.offline" && d.Event.User == alice && d.Status == http.StatusOK
	})
	adm := newAdminClient(t, g2)
	eventually(t, "the queue is empty", func() error {
		st, err := adm.webhooks()
		if err != nil {
			return err
		}
		if st.Pending != 0 || st.Delivered < 3 {
			return fmt.Errorf("parts.webhooks %+v", st)
		}
		return nil
	})
}

// TestWebhookReload starts a gateway without webhooks, adds an endpoint by a live reload
// (events flow, no restart), then rotates its secret (the next event is signed with the
// new one), then removes it (no more events).
func TestWebhookReload(t *testing.T) {
	t.Parallel()
	rc := newHookReceiver(t, nil)
	cfg := newLiveConfig(t, "webhook-reload", gwConfig{})
	g := startTestGateway(t, "webhook-reload", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	if st, err := adm.webhooks(); err != nil || st.Endpoints != 0 {
		t.Fatalf("webhooks before the reload: %+v %v", st, err)
	}
	g.login(t, epTCP, uid("whl-before")) // no endpoint: no event

	endpoint := func(secret string) map[string]any {
		return map[string]any{"url": rc.URL, "secret": secret, "events": []any{"user.online"}}
	}
	cfg.Set("webhooks.endpoints", []any{endpoint("first")})
	if r := cfg.ApplyByAPI(t, adm, byRename); !r.hasChange("webhooks") {
		t.Fatalf("the reload did not apply webhooks: %s", r)
	}
	u1 := uid("whl-one")
	g.login(t, epTCP, u1)
	checkSigned(t, rc.waitFor(t, "user.online after the endpoint was added", func(d hookDelivery) bool { return d.Event.User == u1 }), "first")

	cfg.Set("webhooks.endpoints", []any{endpoint("second")})
	cfg.ApplyByAPI(t, adm, byRename)
	u2 := uid("whl-two")
	g.login(t, epTCP, u2)
	checkSigned(t, rc.waitFor(t, "user.online after the secret changed", func(d hookDelivery) bool { return d.Event.User == u2 }), "second")

	cfg.Set("webhooks.endpoints", []any{})
	cfg.ApplyByAPI(t, adm, byRename)
	u3 := uid("whl-three")
	c := g.login(t, epTCP, u3)
	mustSync(t, c, u3)
	eventually(t, "the endpoint is gone", func() error {
		st, err := adm.webhooks()
		if err != nil || st.Endpoints != 0 {
			return fmt.Errorf("parts.webhooks %+v %v", st, err)
		}
		return nil
	})
	for _, d := range rc.all() {
		if d.Event.User != u1 && d.Event.User != u2 {
			t.Errorf("unexpected event %s", d.Body)
		}
	}
}
