package timgw

import (
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw/wire"
)

func TestBackoffDelay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		b       Backoff
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"defaults, first, no luck", Backoff{}, 1, 0, 500 * time.Millisecond},
		{"defaults, first, full jitter", Backoff{}, 1, 1, 250 * time.Millisecond},
		{"doubles", Backoff{Min: time.Second, Max: time.Minute, Jitter: -1}, 4, 0.9, 8 * time.Second},
		{"capped", Backoff{Min: time.Second, Max: 5 * time.Second, Jitter: -1}, 10, 0, 5 * time.Second},
		{"huge attempt stays capped", Backoff{}, 1000, 0, DefaultBackoffMax},
		{"jitter above 1 is 1", Backoff{Min: time.Second, Jitter: 3}, 1, 0.5, 500 * time.Millisecond},
	} {
		if got := tc.b.Delay(tc.attempt, tc.rnd); got != tc.want {
			t.Errorf("%s: Delay(%d, %v) = %v, want %v", tc.name, tc.attempt, tc.rnd, got, tc.want)
		}
	}
}

func TestDecodeMessagePage(t *testing.T) {
	data := json.RawMessage(`{"friends":{"bob":[{"id":"b2","from":"bob","seq":2,"cmd":"11"},{"id":"b1","from":"bob","seq":1}]},
		"groups":{"g1":[{"id":"g","from":"carol","seq":1,"createTime":5,"chatType":1}]},"cursor":42,"more":true}`)
	p, err := decodeMessagePage(data)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range p.chats {
		ids = append(ids, string(m.ID))
	}
	if got := string(mustJSON(t, ids)); got != `["b1","g","b2"]` {
		t.Errorf("order %s, want seq order then time", got)
	}
	if p.chats[1].GroupID != "g1" || string(p.Cursor) != "42" || !p.More {
		t.Errorf("page %+v: want the group id filled in, cursor 42, more", p)
	}
	if _, err := decodeMessagePage(json.RawMessage(`{"friends":[1]}`)); err == nil {
		t.Error("a page whose friends is a list decoded without error")
	}
}

func TestMessageOf(t *testing.T) {
	for _, tc := range []struct {
		in   packet.Chat
		want int
	}{
		{packet.Chat{To: "bob"}, packet.ChatTypePrivate},
		{packet.Chat{GroupID: "g"}, packet.ChatTypeGroup},
		{packet.Chat{GroupID: "g", ChatType: packet.ChatTypePrivate}, packet.ChatTypePrivate},
	} {
		m := messageOf(tc.in, true)
		if m.ChatType != tc.want || !m.Offline || m.Cmd != packet.CmdChatReq {
			t.Errorf("messageOf(%+v) = %+v, want chat type %d, offline, cmd 11", tc.in, m, tc.want)
		}
	}
}

func TestRememberForgetsOldest(t *testing.T) {
	c := &Client{seen: map[string]bool{}}
	if !c.remember("a") || c.remember("a") || !c.remember("") || !c.remember("") {
		t.Fatal("remember: want a new id once, empty ids always")
	}
	for i := range maxSeen {
		c.remember(string(rune('b' + i)))
	}
	if !c.remember("a") {
		t.Error("the oldest id is still remembered after maxSeen newer ones")
	}
}

func TestEventQueueOrderAndFinish(t *testing.T) {
	got := make(chan Event, 10)
	var q eventQueue
	q.init(func(e Event) { got <- e })
	for i := 1; i <= 3; i++ {
		q.emit(Reconnecting{Attempt: i})
	}
	q.finish()
	q.emit(Reconnecting{Attempt: 4}) // after finish: dropped
	for i := 1; i <= 3; i++ {
		if e := (<-got).(Reconnecting); e.Attempt != i {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	select {
	case e := <-got:
		t.Fatalf("event after finish delivered: %+v", e)
	case <-time.After(50 * time.Millisecond):
	}
}

// A login refused by the server is an *Error carrying its code, and Dial does not retry.
func TestDialLoginRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 512)
		_, _ = nc.Read(buf)
		_, _ = nc.Write(wire.TCPFrame(packet.CmdLoginResp, []byte(`{"cmd":6,"code":10008,"msg":"bad password"}`)))
		_, _ = nc.Read(buf)
	}()
	_, err = Dial(t.Context(), "tcp://"+ln.Addr().String(), Options{UserID: "u"})
	var e *Error
	if !errors.As(err, &e) || e.Code != packet.StatusLoginFailed || e.Msg != "bad password" {
		t.Fatalf("Dial: %v; want an *Error with 10008", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
