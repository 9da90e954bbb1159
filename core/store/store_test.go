package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/pluginhost"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
	"github.com/timgw/timgw/plugins/storage"
	storagebolt "github.com/timgw/timgw/plugins/storage-bolt"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// TestMain lets the test binary serve as the built-in plugin executable.
func TestMain(m *testing.M) {
	pluginhost.Register(pluginhost.Builtin{Kind: pluginhost.Storage, Name: config.StorageBolt, Main: storagebolt.Main})
	pluginhost.Main()
	os.Exit(m.Run())
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startBolt starts the bolt plugin (this test binary) on dir.
func startBolt(t *testing.T, dir string, mod func(*config.Storage)) *Supervisor {
	t.Helper()
	cfg := config.Storage{Plugin: config.StorageBolt, Dir: dir, StartTimeout: 20 * time.Second,
		RestartBackoff: 200 * time.Millisecond, SocketDir: filepath.Join(t.TempDir(), "sock")}
	if mod != nil {
		mod(&cfg)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Options{Storage: cfg, Executable: exe, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// deliveries records what reached the wrapped deliverer.
type deliveries struct {
	got  []packet.Chat
	seen func(router.Envelope) // called during Deliver
	err  error
}

func (d *deliveries) Deliver(_ context.Context, env router.Envelope) (router.Outcome, error) {
	c := *env.Chat
	c.Seq = env.Seq
	d.got = append(d.got, c)
	if d.seen != nil {
		d.seen(env)
	}
	return router.Outcome{Connections: 1}, d.err
}

func privateEnv(from, to, id, content string) router.Envelope {
	return router.Envelope{Kind: router.KindChat, Chat: &packet.Chat{ID: packet.Str(id), From: packet.Str(from), To: packet.Str(to),
		Cmd: packet.Int(packet.CmdChatReq), CreateTime: 1000, ChatType: packet.ChatTypePrivate, Content: content},
		Receivers: []string{to}}
}

func TestDelivererStoresThenDelivers(t *testing.T) {
	sup := startBolt(t, t.TempDir(), nil)
	svc := NewService(sup)
	next := &deliveries{}
	d := NewDeliverer(sup, next)
	next.seen = func(env router.Envelope) {
		// At delivery the chat is stored already, with its seq.
		h, err := svc.History(context.Background(), HistoryQuery{User: "alice", Peer: "bob"})
		if err != nil || len(h.Messages) == 0 || h.Messages[len(h.Messages)-1].Chat.Seq != env.Seq {
			t.Errorf("at delivery of seq %d the history is %v (%v)", env.Seq, h.Messages, err)
		}
	}
	ctx := context.Background()
	out, err := d.Deliver(ctx, privateEnv("alice", "bob", "m1", "one"))
	if err != nil || !out.Stored || out.Duplicate || out.ServerTime == 0 || out.Connections != 1 {
		t.Fatalf("first: %+v, %v", out, err)
	}
	env := privateEnv("bob", "alice", "m2", "two")
	if out, err := d.Deliver(ctx, env); err != nil || out.Seq != 2 || env.Chat.Seq != 0 {
		t.Fatalf("second: seq %d (chat's own %d), %v; want seq 2 in the outcome and the chat untouched", out.Seq, env.Chat.Seq, err)
	}
	resend := privateEnv("alice", "bob", "m1", "one again")
	resend.Chat.CreateTime = 5555
	out2, err := d.Deliver(ctx, resend)
	if err != nil || !out2.Duplicate || !out2.Stored || out2.ServerTime != out.ServerTime || out2.Seq != 1 || out2.CreateTime != 1000 {
		t.Fatalf("resend: %+v, %v; want the first answer", out2, err)
	}
	if len(next.got) != 2 {
		t.Errorf("delivered %d chats, want 2 (the resend is not delivered)", len(next.got))
	}
	page, err := svc.Offline(ctx, OfflineQuery{User: "bob"})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Peer != "alice" || page.Messages[0].Chat.Content != "one" {
		t.Fatalf("bob's offline: %+v, %v", page, err)
	}
	page, err = svc.Offline(ctx, OfflineQuery{User: "bob", Ack: page.Cursor})
	if err != nil || len(page.Messages) != 0 || page.Confirmed != 1 {
		t.Fatalf("bob's offline after ack: %+v, %v", page, err)
	}
}

func TestDelivererGroupReceivers(t *testing.T) {
	sup := startBolt(t, t.TempDir(), nil)
	svc := NewService(sup)
	d := NewDeliverer(sup, &deliveries{})
	env := router.Envelope{Kind: router.KindChat, Chat: &packet.Chat{ID: "g1", From: "alice", Cmd: packet.Int(packet.CmdChatReq),
		ChatType: packet.ChatTypeGroup, GroupID: "room", Content: "hi room", Extras: []byte(`{"a":1}`)},
		Receivers: []string{"alice", "bob", "carol"}}
	if _, err := d.Deliver(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int{"alice": 0, "bob": 1, "carol": 1} {
		page, err := svc.Offline(context.Background(), OfflineQuery{User: user})
		if err != nil || len(page.Messages) != want {
			t.Errorf("%s's offline: %d messages (%v), want %d", user, len(page.Messages), err, want)
		}
		if want == 1 && (page.Messages[0].Group != "room" || string(page.Messages[0].Chat.Extras) != `{"a":1}`) {
			t.Errorf("%s's offline entry %+v", user, page.Messages[0])
		}
	}
}

// failing is a source whose store is always down.
type failing struct{}

func (failing) get(context.Context, time.Duration) (conn, error) {
	return nil, errors.Join(errors.New("down"), storage.ErrUnavailable)
}
func (failing) failed(conn) {}

func TestDelivererUnavailable(t *testing.T) {
	next := &deliveries{}
	d := &Deliverer{next: next, src: failing{}, timeout: 200 * time.Millisecond, log: quietLogger()}
	_, err := d.Deliver(context.Background(), privateEnv("a", "b", "x", "y"))
	if !errors.Is(err, router.ErrUnavailable) {
		t.Fatalf("Deliver with storage down: %v, want router.ErrUnavailable", err)
	}
	if len(next.got) != 0 {
		t.Errorf("a chat that was not stored was delivered")
	}
}

func TestSupervisorRestartsKilledPlugin(t *testing.T) {
	dir := t.TempDir()
	sup := startBolt(t, dir, nil)
	d := NewDeliverer(sup, &deliveries{})
	ctx := context.Background()
	if _, err := d.Deliver(ctx, privateEnv("a", "b", "before", "x")); err != nil {
		t.Fatal(err)
	}
	pid := sup.Pid()
	if pid == 0 {
		t.Fatal("no plugin pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A chat sent right after the kill waits for the restart and is stored.
	env := privateEnv("a", "b", "after", "y")
	out, err := d.Deliver(ctx, env)
	if err != nil {
		t.Fatalf("Deliver after kill -9: %v", err)
	}
	if out.Seq != 2 {
		t.Errorf("seq after restart %d, want 2", out.Seq)
	}
	if p := sup.Pid(); p == pid || p == 0 {
		t.Errorf("plugin pid %d after restart (was %d)", p, pid)
	}
	h, err := NewService(sup).History(ctx, HistoryQuery{User: "a", Peer: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range h.Messages {
		ids = append(ids, string(e.Chat.ID))
	}
	if !slices.Equal(ids, []string{"before", "after"}) {
		t.Errorf("history after restart %v, want [before after]", ids)
	}
}

// A second plugin on a locked bolt directory fails at once (no retries until
// start_timeout), naming the process that holds the lock: the gateway, this test.
func TestStartFailsOnLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	startBolt(t, dir, nil)
	exe, _ := os.Executable()
	start := time.Now()
	_, err := Start(context.Background(), Options{Executable: exe, Logger: quietLogger(), Storage: config.Storage{
		Plugin: config.StorageBolt, Dir: dir, StartTimeout: 30 * time.Second}})
	if err == nil {
		t.Fatal("a second plugin on the same data directory started")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Start gave up after %v, want at once (not start_timeout)", took)
	}
	if !errors.Is(err, storage.ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("locked by pid %d", os.Getpid())) {
		t.Errorf("Start on a locked directory: %v; want ErrInUse naming pid %d", err, os.Getpid())
	}
}

func TestServiceRecallAndHistory(t *testing.T) {
	sup := startBolt(t, t.TempDir(), nil)
	svc := NewService(sup)
	d := NewDeliverer(sup, &deliveries{})
	ctx := context.Background()
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := d.Deliver(ctx, privateEnv("alice", "bob", id, "text "+id)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		q    RecallQuery
		want error
	}{
		{"not the sender", RecallQuery{From: "bob", ID: "r1", Peer: "alice", By: "bob"}, ErrNotFound},
		{"wrong conversation", RecallQuery{From: "alice", ID: "r1", Peer: "carol", By: "alice"}, ErrNotFound},
		{"sender", RecallQuery{From: "alice", ID: "r2", Peer: "bob", By: "alice", Receivers: []string{"bob"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, already, err := svc.Recall(ctx, tc.q)
			if !errors.Is(err, tc.want) || (err == nil && tc.want != nil) {
				t.Fatalf("Recall: %v, want %v", err, tc.want)
			}
			if err == nil && (already || ev.Cmd != packet.Int(packet.CmdCancelMsgResp) || ev.ID != "r2" || ev.Seq != 4 || !ev.Recalled) {
				t.Errorf("recall event %+v", ev)
			}
		})
	}
	svc.clock = func() time.Time { return time.Now().Add(time.Hour) }
	if _, _, err := svc.Recall(ctx, RecallQuery{From: "alice", ID: "r3", Peer: "bob", By: "alice"}); !errors.Is(err, ErrRecallWindow) {
		t.Errorf("late recall: %v, want ErrRecallWindow", err)
	}
	if _, _, err := svc.Recall(ctx, RecallQuery{From: "alice", ID: "r3", Peer: "bob", By: "admin", Admin: true}); err != nil {
		t.Errorf("admin recall after the window: %v", err)
	}
	h, err := svc.History(ctx, HistoryQuery{User: "bob", Peer: "alice", Count: 2, Reverse: true})
	if err != nil || len(h.Messages) != 2 || !h.More || h.Messages[1].Chat.Seq != 5 || h.Messages[0].Chat.Cmd != packet.Int(packet.CmdCancelMsgResp) {
		t.Fatalf("latest 2: %+v more=%v, %v", h.Messages, h.More, err)
	}
	full, _ := svc.History(ctx, HistoryQuery{User: "bob", Peer: "alice"})
	if m := full.Messages[1].Chat; !m.Recalled || m.Content != "" {
		t.Errorf("recalled chat in history: %+v", m)
	}
}

func TestPreload(t *testing.T) {
	dir := t.TempDir()
	sup := startBolt(t, dir, nil)
	svc := NewService(sup)
	ctx := context.Background()
	if err := svc.Join(ctx, "room", "The Room", "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := svc.RememberUser(ctx, "carol", "Carol", ""); err != nil {
		t.Fatal(err)
	}
	reg := session.New()
	groups, users, err := svc.Preload(ctx, reg)
	if err != nil || groups != 1 || users != 1 {
		t.Fatalf("Preload: %d groups, %d users, %v", groups, users, err)
	}
	if !reg.IsMember("room", "alice") || !reg.IsMember("room", "bob") {
		t.Errorf("members not preloaded")
	}
	if u, ok := reg.User("carol"); !ok || u.Nick != "Carol" || u.Status != "offline" {
		t.Errorf("carol: %+v %v", u, ok)
	}
	if reg.Online("carol") {
		t.Errorf("a preloaded user is online")
	}
}

func TestToChat(t *testing.T) {
	cases := []struct {
		name string
		m    *pb.Message
		want packet.Chat
	}{
		{"chat", &pb.Message{Id: "1", From: "a", To: "b", ChatType: 2, MsgType: 1, CreateTime: 5, Seq: 3,
			Content: "x", Extras: []byte(`{"k":1}`)},
			packet.Chat{ID: "1", From: "a", To: "b", Cmd: 11, ChatType: 2, MsgType: 1, CreateTime: 5, Seq: 3,
				Content: "x", Extras: []byte(`{"k":1}`)}},
		{"recall event", &pb.Message{Id: "1", From: "a", GroupId: "g", ChatType: 1, CreateTime: 9, Seq: 7,
			Recalled: true, Kind: storage.KindRecall, RecallId: "1", RecallSeq: 2, RecalledBy: "admin"},
			packet.Chat{ID: "1", From: "a", GroupID: "g", Cmd: 16, ChatType: 1, CreateTime: 9, Seq: 7, Recalled: true,
				Extras: []byte(`{"recallSeq":2,"recalledBy":"admin"}`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ToChat(tc.m)
			if string(got.Extras) != string(tc.want.Extras) {
				t.Errorf("extras %s, want %s", got.Extras, tc.want.Extras)
			}
			got.Extras, tc.want.Extras = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// gathered returns the value of the series of metric name with the given labels (a
// histogram: its sample count), or -1 when there is none.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// A plugin stopped with SIGSTOP answers no ping: it is killed and restarted, and chats
// are stored again; the hang shows in the metrics.
func TestSupervisorRestartsHungPlugin(t *testing.T) {
	reg := prometheus.NewRegistry()
	pm := pluginhost.NewMetrics()
	reg.MustRegister(pm)
	cfg := config.Storage{Plugin: config.StorageBolt, Dir: t.TempDir(), StartTimeout: 20 * time.Second,
		RestartBackoff: 200 * time.Millisecond, SocketDir: filepath.Join(t.TempDir(), "sock"),
		PingInterval: 100 * time.Millisecond, PingMisses: 3, WriteTimeout: 5 * time.Second}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sup, err := Start(context.Background(), Options{Storage: cfg, Executable: exe, Logger: quietLogger(), Registerer: reg, PluginMetrics: pm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sup.Stop)
	d := NewDeliverer(sup, &deliveries{})
	ctx := context.Background()
	if _, err := d.Deliver(ctx, privateEnv("a", "b", "before", "x")); err != nil {
		t.Fatal(err)
	}
	pid := sup.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	deadline := time.Now().Add(15 * time.Second)
	for p := sup.Pid(); p == pid || p == 0; p = sup.Pid() {
		if time.Now().After(deadline) {
			t.Fatalf("the stopped plugin %d was not replaced within 15s (state %s)", pid, sup.host.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := d.Deliver(ctx, privateEnv("a", "b", "after", "y")); err != nil || out.Seq != 2 {
		t.Fatalf("chat after the restart: %+v, %v", out, err)
	}
	labels := map[string]string{"kind": "storage", "name": "bolt"}
	for name, want := range map[string]float64{"timgw_plugin_hangs_total": 1, "timgw_plugin_restarts_total": 1, "timgw_plugin_state": 1} {
		if got := gathered(t, reg, name, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := gathered(t, reg, "timgw_storage_append_seconds", nil); got != 2 {
		t.Errorf("timgw_storage_append_seconds observed %v chats, want 2", got)
	}
	if got := gathered(t, reg, "timgw_storage_batch_size", nil); got < 2 {
		t.Errorf("timgw_storage_batch_size observed %v batches, want >= 2", got)
	}
}

// hangingConn is a store whose PutUser never answers (a plugin stopped mid-call).
type hangingConn struct{ conn }

func (hangingConn) PutUser(ctx context.Context, _ *pb.PutUserRequest) (*pb.PutUserResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type hangingSource struct{ kicked chan struct{} }

func (hangingSource) get(context.Context, time.Duration) (conn, error) { return hangingConn{}, nil }
func (h hangingSource) failed(conn)                                    { h.kicked <- struct{}{} }

// A storage call to a plugin that does not answer ends within Limits.Timeout with
// ErrUnavailable (the login that remembers a user must not wait forever) and is counted.
func TestServiceBoundedWhenPluginHangs(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	src := hangingSource{kicked: make(chan struct{}, 1)}
	svc := &Service{src: src, cfg: Limits{Timeout: 100 * time.Millisecond}, clock: time.Now, metrics: m}
	done := make(chan error, 1)
	go func() { done <- svc.RememberUser(context.Background(), "u", "", "") }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("RememberUser on a hung plugin: %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RememberUser on a hung plugin did not return")
	}
	select {
	case <-src.kicked:
	default:
		t.Error("the supervisor was not told to check the plugin")
	}
	if got := gathered(t, reg, "timgw_storage_errors_total", map[string]string{"op": "put_user"}); got != 1 {
		t.Errorf("timgw_storage_errors_total{op=put_user} = %v, want 1", got)
	}
}

// deliverAsync runs DeliverAsync and waits for its done.
func deliverAsync(t *testing.T, d *Deliverer, env router.Envelope) (router.Outcome, error) {
	t.Helper()
	type result struct {
		out router.Outcome
		err error
	}
	ch := make(chan result, 2)
	d.DeliverAsync(context.Background(), env, func(out router.Outcome, err error) { ch <- result{out, err} })
	select {
	case r := <-ch:
		select {
		case <-ch:
			t.Fatal("done called twice")
		case <-time.After(50 * time.Millisecond):
		}
		return r.out, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("DeliverAsync never called done")
		return router.Outcome{}, nil
	}
}

// DeliverAsync stores and delivers like Deliver, answering through done: a resend is a
// duplicate and is not delivered again, and a chat sent just after the plugin was killed
// waits for the restart (on a goroutine of its own) and is stored.
func TestDeliverAsync(t *testing.T) {
	sup := startBolt(t, t.TempDir(), nil)
	next := &deliveries{}
	d := NewDeliverer(sup, next)
	d.SetExecutor(func(f func()) { go f() }, true)
	out, err := deliverAsync(t, d, privateEnv("alice", "bob", "a1", "one"))
	if err != nil || !out.Stored || out.Seq != 1 || out.Duplicate {
		t.Fatalf("first chat: %+v, %v; want stored with seq 1", out, err)
	}
	dup, err := deliverAsync(t, d, privateEnv("alice", "bob", "a1", "one again"))
	if err != nil || !dup.Duplicate || dup.Seq != 1 || dup.ServerTime != out.ServerTime {
		t.Fatalf("resend: %+v, %v; want the first answer as a duplicate", dup, err)
	}
	if len(next.got) != 1 {
		t.Fatalf("delivered %d chats, want 1 (the resend is not delivered)", len(next.got))
	}
	if err := syscall.Kill(sup.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	after, err := deliverAsync(t, d, privateEnv("alice", "bob", "a2", "two"))
	if err != nil || after.Seq != 2 {
		t.Fatalf("chat after kill -9: %+v, %v; want stored with seq 2 once the plugin is back", after, err)
	}
	if len(next.got) != 2 {
		t.Errorf("delivered %d chats, want 2", len(next.got))
	}
}
