package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
)

type conn struct {
	id  uint64
	mu  sync.Mutex
	got []packet.Chat
}

func (c *conn) ID() uint64       { return c.id }
func (c *conn) Protocol() string { return "test" }
func (c *conn) Close(string)     {}
func (c *conn) Send(p packet.Packet) error {
	var m packet.Chat
	if err := json.Unmarshal(p.Body, &m); err != nil {
		return err
	}
	c.mu.Lock()
	c.got = append(c.got, m)
	c.mu.Unlock()
	return nil
}

func setup() (*Router, *session.Registry, map[string]*conn) {
	reg := session.New()
	conns := map[string]*conn{"alice1": {id: 1}, "alice2": {id: 2}, "bob": {id: 3}, "carol": {id: 4}}
	reg.Bind("alice", conns["alice1"], session.Profile{})
	reg.Bind("alice", conns["alice2"], session.Profile{})
	reg.Bind("bob", conns["bob"], session.Profile{})
	reg.Bind("carol", conns["carol"], session.Profile{})
	reg.Join("g1", "", "alice")
	reg.Join("g1", "", "bob")
	reg.Join("g1", "", "dave") // a member who is offline
	return New(reg, &Local{Registry: reg}, Options{MaxContentBytes: 10}), reg, conns
}

func TestRoute(t *testing.T) {
	tests := []struct {
		name     string
		from     Sender
		chat     packet.Chat
		wantCode packet.Status
		wantMsg  string
		// received counts per connection name
		want map[string]int
	}{
		{"private to online", Sender{UserID: "alice", ConnID: 1}, packet.Chat{To: "bob", ChatType: 2, Content: "hi"},
			packet.StatusOK, "", map[string]int{"bob": 1}},
		{"private to self reaches other devices", Sender{UserID: "alice", ConnID: 1}, packet.Chat{To: "alice", ChatType: 2, Content: "note"},
			packet.StatusOK, "", map[string]int{"alice2": 1}},
		{"private to offline", Sender{UserID: "alice", ConnID: 1}, packet.Chat{To: "zed", ChatType: 2, Content: "hi"},
			packet.StatusOffline, "", nil},
		{"no chatType but to", Sender{UserID: "alice", ConnID: 1}, packet.Chat{To: "bob", Content: "hi"},
			packet.StatusOK, "", map[string]int{"bob": 1}},
		{"private without to", Sender{UserID: "alice", ConnID: 1}, packet.Chat{ChatType: 2, Content: "hi"},
			packet.StatusNoReceiver, "needs \"to\"", nil},
		{"bad chatType", Sender{UserID: "alice", ConnID: 1}, packet.Chat{ChatType: 7, Content: "hi"},
			packet.StatusNoReceiver, "chatType 7", nil},
		{"bad chatType with to", Sender{UserID: "alice", ConnID: 1}, packet.Chat{ChatType: 7, To: "bob", Content: "hi"},
			packet.StatusNoReceiver, "chatType 7", nil},
		{"no chatType, no receiver", Sender{UserID: "alice", ConnID: 1}, packet.Chat{Content: "hi"},
			packet.StatusNoReceiver, "chatType 0", nil},
		{"group fan-out skips sending conn", Sender{UserID: "alice", ConnID: 1}, packet.Chat{GroupID: "g1", ChatType: 1, Content: "hey"},
			packet.StatusOK, "", map[string]int{"alice2": 1, "bob": 1}},
		{"group by non-member", Sender{UserID: "carol", ConnID: 4}, packet.Chat{GroupID: "g1", ChatType: 1, Content: "hey"},
			packet.StatusNotGroupMember, "not a member", nil},
		{"group without id", Sender{UserID: "alice", ConnID: 1}, packet.Chat{ChatType: 1, Content: "hey"},
			packet.StatusNoReceiver, "groupId", nil},
		{"content too large", Sender{UserID: "alice", ConnID: 1}, packet.Chat{To: "bob", ChatType: 2, Content: "0123456789x"},
			packet.StatusTooLarge, "11 bytes", nil},
		{"extras not an object", Sender{UserID: "alice", ConnID: 1}, packet.Chat{To: "bob", ChatType: 2, Extras: json.RawMessage(`[1]`)},
			packet.StatusInvalidBody, "extras", nil},
		{"http sender (no conn)", Sender{UserID: "system", ConnID: 0}, packet.Chat{To: "alice", ChatType: 2, Content: "sys"},
			packet.StatusOK, "", map[string]int{"alice1": 1, "alice2": 1}},
		{"a service identity posts to a group it did not join", Sender{UserID: "bot", Service: true}, packet.Chat{GroupID: "g1", ChatType: 1, Content: "hey"},
			packet.StatusOK, "", map[string]int{"alice1": 1, "alice2": 1, "bob": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, conns := setup()
			chat := tt.chat
			resp := r.Route(context.Background(), tt.from, &chat)
			if resp.Code != tt.wantCode {
				t.Fatalf("code %d (%s), want %d", resp.Code, resp.Msg, tt.wantCode)
			}
			if !strings.Contains(resp.Msg, tt.wantMsg) {
				t.Errorf("msg %q does not say %q", resp.Msg, tt.wantMsg)
			}
			for name, c := range conns {
				if got := len(c.got); got != tt.want[name] {
					t.Errorf("%s received %d, want %d", name, got, tt.want[name])
				}
				for _, m := range c.got {
					if string(m.From) != tt.from.UserID || m.ID == "" || m.CreateTime == 0 || m.Cmd != 11 {
						t.Errorf("%s received an unstamped chat %+v", name, m)
					}
				}
			}
			if tt.wantCode == packet.StatusOK || tt.wantCode == packet.StatusOffline {
				ack := resp.Ack
				if ack == nil || ack.ID == "" || ack.ID != string(chat.ID) {
					t.Errorf("ack %+v does not carry the message id %q", ack, chat.ID)
				}
			}
		})
	}
}

func TestRouteOverwritesForgedFromAndKeepsClientID(t *testing.T) {
	r, _, conns := setup()
	chat := packet.Chat{ID: "client-1", From: "mallory", To: "bob", ChatType: 2, Content: "x"}
	r.Route(context.Background(), Sender{UserID: "alice", ConnID: 1}, &chat)
	got := conns["bob"].got
	if len(got) != 1 || got[0].From != "alice" || got[0].ID != "client-1" {
		t.Fatalf("bob got %+v, want from alice with id client-1", got)
	}
}

type failing struct{ err error }

func (f failing) Deliver(context.Context, Envelope) (Outcome, error) { return Outcome{}, f.err }

func TestRouteDeliveryErrors(t *testing.T) {
	tests := []struct {
		err  error
		want packet.Status
	}{
		{fmt.Errorf("store: %w", ErrUnavailable), packet.StatusStorageUnavailable},
		{errors.New("boom"), packet.StatusSendFailed},
	}
	for _, tt := range tests {
		reg := session.New()
		r := New(reg, failing{tt.err}, Options{})
		resp := r.Route(context.Background(), Sender{UserID: "a", ConnID: 1}, &packet.Chat{To: "b", ChatType: 2})
		if resp.Code != tt.want || !strings.Contains(resp.Msg, tt.err.Error()) {
			t.Errorf("%v: got %d %q, want %d", tt.err, resp.Code, resp.Msg, tt.want)
		}
	}
}

func TestLocalDeliversEveryKind(t *testing.T) {
	reg := session.New()
	a1, a2, b := &rec{id: 1}, &rec{id: 2}, &rec{id: 3}
	reg.Bind("alice", a1, session.Profile{})
	reg.Bind("alice", a2, session.Profile{})
	reg.Bind("bob", b, session.Profile{})
	l := &Local{Registry: reg}
	chat := &packet.Chat{ID: "m1", From: "alice", To: "bob", ChatType: 2, Content: "x"}
	notice := packet.Packet{Cmd: packet.CmdJoinGroupNotify, Body: []byte(`{"cmd":9}`)}
	tests := []struct {
		name      string
		env       Envelope
		wantConns int
		want      map[*rec]string // what each connection got: a cmd, or "closed"
	}{
		{"chat carries the envelope's seq", Envelope{Kind: KindChat, Chat: chat, Seq: 7, Receivers: []string{"bob"}},
			1, map[*rec]string{b: "11 seq 7"}},
		{"notice skips the sending conn", Envelope{Kind: KindNotice, Notice: notice, Receivers: []string{"alice", "bob"}, SkipConn: 1},
			2, map[*rec]string{a2: "9", b: "9"}},
		{"kick closes every conn of the user", Envelope{Kind: KindKick, Reason: "bye", Receivers: []string{"alice"}},
			2, map[*rec]string{a1: "closed bye", a2: "closed bye"}},
		{"offline receiver", Envelope{Kind: KindNotice, Notice: notice, Receivers: []string{"zed"}}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []*rec{a1, a2, b} {
				c.got = nil
			}
			out, err := l.Deliver(context.Background(), tt.env)
			if err != nil || out.Connections != tt.wantConns {
				t.Fatalf("Deliver = %+v, %v; want %d connections", out, err, tt.wantConns)
			}
			for _, c := range []*rec{a1, a2, b} {
				want := tt.want[c]
				got := strings.Join(c.got, ",")
				if got != want {
					t.Errorf("conn %d got %q, want %q", c.id, got, want)
				}
			}
		})
	}
	if chat.Seq != 0 {
		t.Errorf("Local wrote seq %d into the shared chat", chat.Seq)
	}
	if _, err := l.Deliver(context.Background(), Envelope{}); err == nil {
		t.Error("an envelope without a kind was delivered")
	}
}

// rec records what a connection was sent, as "cmd" (with " seq N" for chats) or "closed reason".
type rec struct {
	id  uint64
	got []string
}

func (c *rec) ID() uint64       { return c.id }
func (c *rec) Protocol() string { return "test" }
func (c *rec) Close(r string)   { c.got = append(c.got, "closed "+r) }
func (c *rec) Send(p packet.Packet) error {
	s := fmt.Sprint(int(p.Cmd))
	if p.Cmd == packet.CmdChatReq {
		var m packet.Chat
		if err := json.Unmarshal(p.Body, &m); err != nil {
			return err
		}
		s += fmt.Sprintf(" seq %d", m.Seq)
	}
	c.got = append(c.got, s)
	return nil
}

func TestNewIDUnique(t *testing.T) {
	r, _, _ := setup()
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := r.NewID()
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func BenchmarkRoutePrivate(b *testing.B) {
	r, _, _ := setup()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		chat := packet.Chat{To: "bob", ChatType: 2, Content: "hello"}
		r.Route(context.Background(), Sender{UserID: "alice", ConnID: 1}, &chat)
	}
}

func TestRouteAlso(t *testing.T) {
	r, _, conns := setup()
	chat := packet.Chat{To: "zed", ChatType: 2, Content: "for bot"}
	// zed (the bot) is offline; carol gets a copy; alice (the sender) and a repeat of
	// carol are not added twice.
	res := r.RouteAlso(context.Background(), Sender{UserID: "alice", ConnID: 1}, &chat, []string{"carol", "alice", "carol"})
	if res.Code != packet.StatusOK || res.Ack == nil || res.Ack.To != "zed" || res.Ack.Delivered != 1 {
		t.Fatalf("result %+v ack %+v: want 10000, to zed, 1 delivery", res, res.Ack)
	}
	if got := conns["carol"].got; len(got) != 1 || got[0].To != "zed" || got[0].From != "alice" {
		t.Fatalf("carol got %+v, want the chat to zed from alice", got)
	}
	if len(conns["alice2"].got) != 0 || len(conns["bob"].got) != 0 {
		t.Fatalf("others got copies: alice2 %d bob %d", len(conns["alice2"].got), len(conns["bob"].got))
	}
}

// sink is a connection that takes every push and keeps nothing: benchmarks count only
// what routing allocates.
type sink struct{ id uint64 }

func (c *sink) ID() uint64               { return c.id }
func (c *sink) Protocol() string         { return "test" }
func (c *sink) Close(string)             {}
func (c *sink) Send(packet.Packet) error { return nil }

// BenchmarkRoutePrivateLocal routes a private chat to an online receiver through Local,
// as a gateway without storage does: checks, stamp, id, envelope, the cmd 11 body and the
// ack. Allocations per chat are the number to watch (issue 12 item 4).
func BenchmarkRoutePrivateLocal(b *testing.B) {
	reg := session.New()
	reg.Bind("alice", &sink{id: 1}, session.Profile{})
	reg.Bind("bob", &sink{id: 2}, session.Profile{})
	r := New(reg, &Local{Registry: reg}, Options{MaxContentBytes: 4096})
	content := strings.Repeat("x", 64)
	b.ReportAllocs()
	for b.Loop() {
		chat := packet.Chat{To: "bob", ChatType: 2, Content: content}
		if res := r.Route(context.Background(), Sender{UserID: "alice", ConnID: 1}, &chat); res.Ack == nil {
			b.Fatalf("refused: %+v", res)
		}
	}
}

// BenchmarkChatPacket encodes the cmd 11 body a receiver gets.
func BenchmarkChatPacket(b *testing.B) {
	chat := &packet.Chat{ID: "a1b2c3d4e5f6", From: "user-000123", To: "user-000456", Cmd: 11, CreateTime: 1700000000000,
		ChatType: 2, Content: strings.Repeat("x", 64)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ChatPacket(Envelope{Kind: KindChat, Chat: chat, Seq: 7}); err != nil {
			b.Fatal(err)
		}
	}
}

// idSink keeps BenchmarkNewID's ids from being optimized away.
var idSink string

// BenchmarkNewID makes message ids.
func BenchmarkNewID(b *testing.B) {
	r, _, _ := setup()
	r.idSeq.Store(1 << 40) // a long-running gateway's ids
	b.ReportAllocs()
	for b.Loop() {
		idSink = r.NewID()
	}
}

// TestRouteStampsUniqueIDs: a chat without an id gets a new one, the same in the chat,
// its ack and what the receiver gets, and no two chats share one.
func TestRouteStampsUniqueIDs(t *testing.T) {
	r, _, conns := setup()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		chat := packet.Chat{To: "bob", ChatType: 2, Content: "hi"}
		res := r.Route(context.Background(), Sender{UserID: "alice", ConnID: 1}, &chat)
		if res.Ack == nil || res.Ack.ID == "" || res.Ack.ID != string(chat.ID) || res.Ack.To != "bob" {
			t.Fatalf("chat %d: result %+v ack %+v, chat id %q", i, res, res.Ack, chat.ID)
		}
		if seen[res.Ack.ID] {
			t.Fatalf("chat %d: duplicate id %s", i, res.Ack.ID)
		}
		seen[res.Ack.ID] = true
	}
	got := conns["bob"].got
	if len(got) != 1000 {
		t.Fatalf("bob got %d chats, want 1000", len(got))
	}
	for _, m := range got {
		if !seen[string(m.ID)] || m.To != "bob" || m.From != "alice" {
			t.Fatalf("bob got %+v: an id the sender was not told, or the wrong parties", m)
		}
	}
}
