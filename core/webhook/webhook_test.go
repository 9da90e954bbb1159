package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/timgw/timgw/core/config"
)

// wait bounds every wait for a delivery: generous, the tests may run on busy cores.
const wait = 10 * time.Second

func TestSign(t *testing.T) {
	body := []byte(`{"id":"a"}`)
	tests := []struct {
		name   string
		secret string
		ts     int64
		body   []byte
		sig    string
		want   bool
	}{
		{"reference value", "k3y", 1700000000, body, "sha256=ac2647740e07f2078396116202d2c1bf21babb9d0beb7b020cd6d213ebf74a29", true},
		{"other timestamp", "k3y", 1700000001, body, "sha256=ac2647740e07f2078396116202d2c1bf21babb9d0beb7b020cd6d213ebf74a29", false},
		{"other secret", "key", 1700000000, body, "sha256=ac2647740e07f2078396116202d2c1bf21babb9d0beb7b020cd6d213ebf74a29", false},
		{"other body", "k3y", 1700000000, []byte(`{"id":"b"}`), "sha256=ac2647740e07f2078396116202d2c1bf21babb9d0beb7b020cd6d213ebf74a29", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.secret, tt.ts, tt.body, tt.sig); got != tt.want {
				t.Errorf("Verify = %v, want %v (Sign = %s)", got, tt.want, Sign(tt.secret, tt.ts, tt.body))
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	min, max := time.Second, 5*time.Minute
	tests := []struct {
		n        int
		r        float64
		from, to time.Duration // inclusive bounds
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 500 * time.Millisecond, time.Second},
		{2, 0.5, time.Second, 2 * time.Second},
		{5, 0.999, 8 * time.Second, 16 * time.Second},
		{9, 0.999, 150 * time.Second, 5 * time.Minute}, // 256 s, capped at 300 s
		{30, 0.999, 150 * time.Second, 5 * time.Minute},
		{1000, 0, 150 * time.Second, 150 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		if d := backoff(tt.n, min, max, tt.r); d < tt.from || d > tt.to {
			t.Errorf("backoff(%d, r=%v) = %v, want within [%v, %v]", tt.n, tt.r, d, tt.from, tt.to)
		}
	}
}

func TestTypesMatchConfig(t *testing.T) {
	if !slices.Equal(Types, config.WebhookEvents) {
		t.Fatalf("webhook.Types %v != config.WebhookEvents %v", Types, config.WebhookEvents)
	}
}

// request is one POST a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver is an HTTP endpoint that records requests and answers the status its
// answer function chooses (200 without one).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	answer func(n int, r request) int // n counts requests from 1
	got    chan struct{}
}

func newReceiver(t testing.TB, answer func(n int, r request) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer, got: make(chan struct{}, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{header: r.Header.Clone(), body: b}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, req)
		n := len(rc.reqs)
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.answer != nil {
			code = rc.answer(n, req)
		}
		w.WriteHeader(code)
		select { // wakes waitN; when full, waitN has wake-ups queued already
		case rc.got <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// waitN waits until the receiver got n requests and returns them.
func (rc *receiver) waitN(t *testing.T, n int) []request {
	t.Helper()
	deadline := time.After(wait)
	for {
		rc.mu.Lock()
		if len(rc.reqs) >= n {
			out := slices.Clone(rc.reqs)
			rc.mu.Unlock()
			return out
		}
		rc.mu.Unlock()
		select {
		case <-rc.got:
		case <-deadline:
			rc.mu.Lock()
			got := len(rc.reqs)
			rc.mu.Unlock()
			t.Fatalf("the receiver got %d requests, want %d", got, n)
		}
	}
}

// sortedUsers returns the user field of the events POSTed, sorted.
func sortedUsers(reqs []request) []string {
	var users []string
	for _, r := range reqs {
		var ev Event
		_ = json.Unmarshal(r.body, &ev)
		users = append(users, ev.User)
	}
	slices.Sort(users)
	return users
}

// testConfig is a webhooks section with fast retries, POSTing to urls.
func testConfig(urls ...string) config.Webhooks {
	c := config.DefaultWebhooks()
	c.Retry.BackoffMin, c.Retry.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	for _, u := range urls {
		c.Endpoints = append(c.Endpoints, config.WebhookEndpoint{URL: u, Secret: "s3cret"})
	}
	return c
}

func startDispatcher(t *testing.T, o Options) *Dispatcher {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "q")
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// waitStatus waits until the dispatcher's status satisfies ok.
func waitStatus(t *testing.T, d *Dispatcher, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		s := d.Status()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %+v", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliveryHeadersAndSignature(t *testing.T) {
	rc := newReceiver(t, nil)
	d := startDispatcher(t, Options{Config: testConfig(rc.URL), Node: "n1"})
	if !d.Wants(TypeMessageOffline) || !d.Wants(TypeUserOnline) {
		t.Fatal("an endpoint without events must want every type")
	}
	d.Emit(Event{Type: TypeMessageOffline, Message: &Message{ID: "m1", From: "alice", To: "bob", ChatType: 2, Content: "hi"},
		OfflineUsers: []string{"bob"}})
	r := rc.waitN(t, 1)[0]
	var ev Event
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ID == "" || ev.Type != TypeMessageOffline || ev.Node != "n1" || ev.Time == 0 || ev.Message.Content != "hi" {
		t.Errorf("event = %s", r.body)
	}
	h := r.header
	if h.Get("Content-Type") != "application/json" || h.Get(HeaderEvent) != TypeMessageOffline ||
		h.Get(HeaderEventID) != ev.ID || h.Get(HeaderIdempotencyKey) != ev.ID {
		t.Errorf("headers = %v", h)
	}
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Hour {
		t.Errorf("timestamp %q", h.Get(HeaderTimestamp))
	}
	if !Verify("s3cret", ts, r.body, h.Get(HeaderSignature)) {
		t.Errorf("signature %q does not verify", h.Get(HeaderSignature))
	}
	waitStatus(t, d, "delivered and settled", func(s Status) bool { return s.Delivered == 1 && s.Pending == 0 })
}

func TestEndpointEventFilter(t *testing.T) {
	all, online := newReceiver(t, nil), newReceiver(t, nil)
	cfg := testConfig(all.URL, online.URL)
	cfg.Endpoints[1].Events = []string{TypeUserOnline}
	d := startDispatcher(t, Options{Config: cfg})
	d.Emit(Event{Type: TypeUserOffline, User: "u1"})
	d.Emit(Event{Type: TypeUserOnline, User: "u1"})
	all.waitN(t, 2)
	waitStatus(t, d, "settled", func(s Status) bool { return s.Delivered == 3 && s.Pending == 0 })
	got := online.waitN(t, 1)
	if len(got) != 1 || got[0].header.Get(HeaderEvent) != TypeUserOnline {
		t.Fatalf("the user.online endpoint got %d requests, first %v", len(got), got[0].header)
	}
}

func TestRetryKeepsEventID(t *testing.T) {
	rc := newReceiver(t, func(n int, _ request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	reg := prometheus.NewRegistry()
	d := startDispatcher(t, Options{Config: testConfig(rc.URL), Registerer: reg})
	d.Emit(Event{Type: TypeUserOnline, User: "u1"})
	reqs := rc.waitN(t, 3)
	for _, r := range reqs[1:] {
		if r.header.Get(HeaderEventID) != reqs[0].header.Get(HeaderEventID) || string(r.body) != string(reqs[0].body) {
			t.Fatalf("a retry changed the event: %s vs %s", r.body, reqs[0].body)
		}
	}
	waitStatus(t, d, "delivered on the 3rd attempt", func(s Status) bool { return s.Delivered == 1 && s.Pending == 0 })
	if n := counterValue(t, d.m.results[resultRetry]); n != 2 {
		t.Errorf("retry count %v, want 2", n)
	}
	if n := counterValue(t, d.m.events[TypeUserOnline]); n != 1 {
		t.Errorf("events count %v, want 1", n)
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	rc := newReceiver(t, func(int, request) int { return http.StatusBadGateway })
	cfg := testConfig(rc.URL)
	cfg.Retry.MaxAttempts = 3
	dir := filepath.Join(t.TempDir(), "q")
	d := startDispatcher(t, Options{Config: cfg, Dir: dir})
	d.Emit(Event{Type: TypeUserOnline, User: "u1"})
	waitStatus(t, d, "given up", func(s Status) bool { return s.Failed == 1 && s.Pending == 0 })
	if n := len(rc.waitN(t, 3)); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentExt)); len(segs) != 0 {
		t.Errorf("the given-up event's segment is still there: %v", segs)
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	block := make(chan struct{})
	rc := newReceiver(t, func(n int, _ request) int {
		if n == 1 {
			<-block // the first attempt never gets an answer in time
		}
		return http.StatusOK
	})
	defer close(block)
	cfg := testConfig(rc.URL)
	cfg.Endpoints[0].Timeout = 100 * time.Millisecond
	d := startDispatcher(t, Options{Config: cfg})
	d.Emit(Event{Type: TypeUserOnline, User: "u1"})
	waitStatus(t, d, "delivered after a timeout", func(s Status) bool { return s.Delivered == 1 })
}

func TestSpoolSurvivesRestart(t *testing.T) {
	down := newReceiver(t, func(int, request) int { return http.StatusServiceUnavailable })
	dir := filepath.Join(t.TempDir(), "q")
	cfg := testConfig(down.URL)
	cfg.Retry.BackoffMin, cfg.Retry.BackoffMax = time.Hour, time.Hour // no retry before the restart
	d1 := startDispatcher(t, Options{Config: cfg, Dir: dir})
	for i := range 3 {
		d1.Emit(Event{Type: TypeUserOnline, User: "u" + strconv.Itoa(i)})
	}
	// The endpoint fails and cools down for the backoff (an hour): it gets one or a few
	// attempts, not one per event. All three are pending when the gateway stops.
	down.waitN(t, 1)
	waitStatus(t, d1, "three events pending", func(s Status) bool { return s.Pending == 3 })
	if err := d1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	d1.Emit(Event{Type: TypeUserOnline, User: "late"}) // after Close: not delivered, no panic

	up := newReceiver(t, nil)
	d2 := startDispatcher(t, Options{Config: testConfig(up.URL), Dir: dir})
	if users := sortedUsers(up.waitN(t, 3)); !slices.Equal(users, []string{"u0", "u1", "u2"}) {
		t.Errorf("after the restart the receiver got %v", users)
	}
	waitStatus(t, d2, "settled", func(s Status) bool { return s.Pending == 0 && s.Delivered == 3 })
	if segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentExt)); len(segs) != 0 {
		t.Errorf("delivered segments are still there: %v", segs)
	}
}

func TestCloseFlushesChannel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	cfg := testConfig("http://127.0.0.1:1/unreachable")
	cfg.Retry.BackoffMin, cfg.Retry.BackoffMax = time.Hour, time.Hour
	d, err := New(Options{Config: cfg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		d.Emit(Event{Type: TypeUserOffline, User: "u" + strconv.Itoa(i)})
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sp, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	evs, bad, err := sp.load()
	if err != nil || bad != 0 || len(evs) != 50 {
		t.Fatalf("after Close the queue holds %d events (bad %d, err %v), want 50", len(evs), bad, err)
	}
}

func TestQueueBoundDropsOldest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	cfg := testConfig("http://127.0.0.1:1/unreachable")
	cfg.Retry.BackoffMin, cfg.Retry.BackoffMax = time.Hour, time.Hour
	cfg.Queue.MaxEvents = 3
	d := startDispatcher(t, Options{Config: cfg, Dir: dir})
	for i := range 5 {
		d.Emit(Event{Type: TypeUserOffline, User: "u" + strconv.Itoa(i)})
		// one at a time, so that each is its own batch and order is kept
		waitStatus(t, d, "queued", func(s Status) bool { return s.Pending+int(s.Dropped) == i+1 })
	}
	waitStatus(t, d, "bounded", func(s Status) bool { return s.Pending == 3 && s.Dropped == 2 })

	rc := newReceiver(t, nil)
	up := testConfig(rc.URL) // a reload to a working endpoint: the pending events go there
	d.SetConfig(up)
	if users := sortedUsers(rc.waitN(t, 3)); !slices.Equal(users, []string{"u2", "u3", "u4"}) {
		t.Errorf("the newest 3 must be kept, the receiver got %v", users)
	}
	waitStatus(t, d, "settled", func(s Status) bool { return s.Pending == 0 })
	if segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentExt)); len(segs) != 0 {
		t.Errorf("segments left: %v", segs)
	}
}

func TestFullChannelDrops(t *testing.T) {
	d := &Dispatcher{in: make(chan Event, 1), log: discardLogger()}
	d.wants.Store(&map[string]bool{})
	d.Emit(Event{Type: TypeUserOnline})
	d.Emit(Event{Type: TypeUserOnline}) // nothing reads the channel: dropped, not blocked
	if d.dropped.Load() != 1 {
		t.Fatalf("dropped = %d, want 1", d.dropped.Load())
	}
}

func TestNoEndpointsOpensNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	d := startDispatcher(t, Options{Config: config.DefaultWebhooks(), Dir: dir})
	if d.Wants(TypeUserOnline) {
		t.Error("no endpoint: nothing is wanted")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the queue directory was created without endpoints: %v", err)
	}
	rc := newReceiver(t, nil)
	cfg := testConfig(rc.URL)
	if err := d.Prepare(cfg); err != nil {
		t.Fatal(err)
	}
	d.SetConfig(cfg)
	d.Emit(Event{Type: TypeUserOnline, User: "u1"})
	rc.waitN(t, 1)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestDownEndpointIsProbedNotFlooded(t *testing.T) {
	down := newReceiver(t, func(int, request) int { return http.StatusServiceUnavailable })
	cfg := testConfig(down.URL)
	cfg.Retry.BackoffMin, cfg.Retry.BackoffMax = time.Hour, time.Hour
	d := startDispatcher(t, Options{Config: cfg, Workers: 1})
	for i := range 20 {
		d.Emit(Event{Type: TypeUserOnline, User: "u" + strconv.Itoa(i)})
	}
	down.waitN(t, 1)
	waitStatus(t, d, "all queued", func(s Status) bool { return s.Pending == 20 })
	time.Sleep(200 * time.Millisecond) // time for more attempts, were the endpoint not cooling down
	down.mu.Lock()
	n := len(down.reqs)
	down.mu.Unlock()
	if n != 1 {
		t.Fatalf("an endpoint that is down got %d requests, want 1 probe", n)
	}
	if s := d.Status(); s.Failed != 0 || s.Pending != 20 {
		t.Fatalf("status %+v: the events must wait, not be given up", s)
	}
}
