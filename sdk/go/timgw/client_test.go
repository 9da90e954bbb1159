package timgw

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
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

// silentServer is a t-im TCP server that logs every connection in, answers offline
// queries with an empty page, and never answers a heartbeat: a dead peer that keeps
// its sockets open. It counts the logins.
func silentServer(t *testing.T) (addr string, logins chan int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	logins = make(chan int, 10)
	n := 0
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			n++
			go serveSilent(nc, n, logins)
		}
	}()
	return ln.Addr().String(), logins
}

func serveSilent(nc net.Conn, n int, logins chan int) {
	for {
		cmd, _, err := readFrame(nc)
		if err != nil {
			return
		}
		switch cmd {
		case packet.CmdLoginReq:
			_, _ = nc.Write(wire.TCPFrame(packet.CmdLoginResp, []byte(`{"cmd":6,"code":10007,"user":{"userId":"u"}}`)))
			logins <- n
		case packet.CmdGetMessageReq:
			_, _ = nc.Write(wire.TCPFrame(packet.CmdGetMessageResp, []byte(`{"cmd":20,"code":10016,"data":{}}`)))
		}
	}
}

// A connection silent for 2.5 heartbeat periods is replaced: the client reports it,
// waits its backoff, logs in again; Close during the next wait ends the session.
func TestSilentConnectionReplaced(t *testing.T) {
	addr, logins := silentServer(t)
	events := make(chan Event, 100)
	c, err := Dial(t.Context(), "tcp://"+addr, Options{UserID: "u", Heartbeat: 40 * time.Millisecond,
		Reconnect: Backoff{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond, Jitter: -1},
		OnEvent:   func(e Event) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string, match func(Event) bool) Event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case e := <-events:
				if match(e) {
					return e
				}
			case <-deadline:
				t.Fatalf("no %s", what)
			}
		}
	}
	if n := <-logins; n != 1 {
		t.Fatalf("first login on connection %d", n)
	}
	cl := next("Closed", func(e Event) bool { _, ok := e.(Closed); return ok }).(Closed)
	if !cl.WillReconnect || !errors.Is(cl.Err, os.ErrDeadlineExceeded) {
		t.Fatalf("closed %+v: want a read deadline and a reconnection", cl)
	}
	li := next("LoggedIn again", func(e Event) bool { l, ok := e.(LoggedIn); return ok && l.Reconnect }).(LoggedIn)
	if li.User.UserID != "u" {
		t.Fatalf("login again: %+v", li)
	}
	if n := <-logins; n != 2 {
		t.Fatalf("second login on connection %d, want a new connection", n)
	}
	next("Reconnecting", func(e Event) bool { _, ok := e.(Reconnecting); return ok })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	last := next("final Closed", func(e Event) bool { c, ok := e.(Closed); return ok && !c.WillReconnect }).(Closed)
	if !errors.Is(last.Err, ErrClosed) || c.State() != StateClosed {
		t.Fatalf("after Close: %+v, state %v", last, c.State())
	}
	if _, err := c.Chat(t.Context(), "x", "y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("chat after Close: %v", err)
	}
}

// readFrame reads one t-im TCP frame from nc (the scripted servers of these tests).
func readFrame(nc net.Conn) (packet.Cmd, []byte, error) {
	hdr := make([]byte, wire.TCPHeaderLen)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(nc, body); err != nil {
		return 0, nil, err
	}
	return packet.Cmd(hdr[0]), body, nil
}
