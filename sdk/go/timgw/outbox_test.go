package timgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw/wire"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		code packet.Status
		want bool
	}{
		{packet.StatusStorageUnavailable, true},
		{packet.StatusServerBusy, true},
		{packet.StatusOK, false},
		{packet.StatusNotGroupMember, false},
		{packet.StatusTooLarge, false},
		{packet.StatusRejected, false},
		{packet.StatusRateLimited, false},
		{packet.StatusForbidden, false},
	} {
		if got := retryable(tc.code); got != tc.want {
			t.Errorf("retryable(%d) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestUnackedError(t *testing.T) {
	refusal := &Error{Code: packet.StatusServerBusy, Msg: "shutting down"}
	for _, tc := range []struct {
		name string
		e    *UnackedError
		want string
	}{
		{"not written", &UnackedError{ID: "a", Err: context.DeadlineExceeded},
			"timgw: chat a not acknowledged: context deadline exceeded"},
		{"written, refused", &UnackedError{ID: "b", Written: true, LastRefusal: refusal, Err: context.Canceled},
			"timgw: chat b not acknowledged: context canceled (written: the gateway may have accepted it; resend with this id to know); last answer: timgw: refused: 10034 shutting down"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if !errors.Is(tc.e, tc.e.Err) {
			t.Errorf("%s: does not wrap %v", tc.name, tc.e.Err)
		}
	}
	var e *Error
	if !errors.As(&UnackedError{ID: "c", LastRefusal: refusal, Err: context.Canceled}, &e) || e != refusal {
		t.Error("an UnackedError does not wrap its last refusal")
	}
}

// chatServer is a t-im TCP server that logs every connection in and answers each chat
// with answer(connection number, chat id): a status code, 0 for no answer, or -1 to
// answer 10034 and close the connection (a gateway shutting down). It records the ids
// of the chats it read, in order.
type chatServer struct {
	addr   string
	answer func(conn int, id string) int
	mu     sync.Mutex
	read   []string
}

func newChatServer(t *testing.T, answer func(conn int, id string) int) *chatServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &chatServer{addr: "tcp://" + ln.Addr().String(), answer: answer}
	go func() {
		for n := 1; ; n++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			go s.serve(nc, n)
		}
	}()
	return s
}

func (s *chatServer) serve(nc net.Conn, n int) {
	defer nc.Close()
	for {
		cmd, body, err := readFrame(nc)
		if err != nil {
			return
		}
		switch cmd {
		case packet.CmdLoginReq:
			_, _ = nc.Write(wire.TCPFrame(packet.CmdLoginResp, []byte(`{"cmd":6,"code":10007,"user":{"userId":"u"}}`)))
		case packet.CmdGetMessageReq:
			_, _ = nc.Write(wire.TCPFrame(packet.CmdGetMessageResp, []byte(`{"cmd":20,"code":10016,"data":{}}`)))
		case packet.CmdChatReq:
			var m packet.Chat
			_ = json.Unmarshal(body, &m)
			s.mu.Lock()
			s.read = append(s.read, string(m.ID))
			s.mu.Unlock()
			code := s.answer(n, string(m.ID))
			if code == 0 {
				continue
			}
			c := code
			if code < 0 {
				c = int(packet.StatusServerBusy)
			}
			_, _ = nc.Write(wire.TCPFrame(packet.CmdChatResp, fmt.Appendf(nil, `{"cmd":12,"code":%d,"msg":"m","data":{"id":%q}}`, c, m.ID)))
			if code < 0 {
				return
			}
		}
	}
}

func (s *chatServer) reads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.read...)
}

func dialTest(t *testing.T, addr string, opts Options) *Client {
	t.Helper()
	opts.UserID = "u"
	opts.Heartbeat = -1
	opts.Reconnect = Backoff{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond, Jitter: -1}
	c, err := Dial(t.Context(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Refusals are final; 10034 and 10030 are written again after the next login, and the
// Send returns the answer to the resend.
func TestOutboxRefusals(t *testing.T) {
	s := newChatServer(t, func(conn int, id string) int {
		switch {
		case id == "member":
			return int(packet.StatusNotGroupMember)
		case id == "storage" && conn == 1:
			return int(packet.StatusStorageUnavailable)
		case id == "busy" && conn == 1:
			return -1 // 10034, then the connection closes
		}
		return int(packet.StatusOK)
	})
	c := dialTest(t, s.addr, Options{})
	ctx := t.Context()
	var e *Error
	if _, err := c.Send(ctx, packet.Chat{ID: "member", To: "x"}); !errors.As(err, &e) || e.Code != packet.StatusNotGroupMember {
		t.Fatalf("chat refused with 10025: %v; want that *Error", err)
	}
	var wg sync.WaitGroup
	acks := map[string]*Ack{}
	var mu sync.Mutex
	for _, id := range []string{"storage", "busy"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := c.Send(ctx, packet.Chat{ID: packet.Str(id), To: "x"})
			if err != nil {
				t.Errorf("chat %s: %v; want the answer to its resend", id, err)
			}
			mu.Lock()
			acks[id] = a
			mu.Unlock()
		}()
		for len(s.reads()) < 2 || s.reads()[len(s.reads())-1] != id {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	for id, a := range acks {
		if a == nil || a.Code != packet.StatusOK || a.ID != id {
			t.Errorf("chat %s: %+v; want 10000", id, a)
		}
	}
	if got, want := fmt.Sprint(s.reads()), "[member storage busy storage busy]"; got != want {
		t.Errorf("the server read %s, want %s (refusals not resent, the others in order)", got, want)
	}
}

// The outbox is bounded; a Send whose context ends leaves it; Close fails what is left.
func TestOutboxBoundAndClose(t *testing.T) {
	s := newChatServer(t, func(int, string) int { return 0 }) // never answers
	c := dialTest(t, s.addr, Options{MaxOutbox: 3})
	errs := make(chan error, 3)
	wait := func(id string) {
		go func() {
			_, err := c.Send(context.Background(), packet.Chat{ID: packet.Str(id), To: "x"})
			errs <- err
		}()
		for out := c.Outbox(); len(out) == 0 || out[len(out)-1] != id; out = c.Outbox() {
			time.Sleep(time.Millisecond)
		}
	}
	wait("a")
	wait("b")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	var un *UnackedError
	if _, err := c.Send(ctx, packet.Chat{ID: "c", To: "x"}); !errors.As(err, &un) || un.ID != "c" || !un.Written || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("chat whose context ended: %v; want an *UnackedError, written", err)
	}
	if got := fmt.Sprint(c.Outbox()); got != "[a b]" {
		t.Fatalf("outbox %s, want [a b]", got)
	}
	wait("d")
	if _, err := c.Send(t.Context(), packet.Chat{ID: "e", To: "x"}); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("fourth chat with MaxOutbox 3: %v; want ErrOutboxFull", err)
	}
	c.Close()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("chat waiting at Close: %v; want ErrClosed", err)
		}
	}
	if got := fmt.Sprint(s.reads()); got != "[a b c d]" {
		t.Errorf("the server read %s, want [a b c d]", got)
	}
}
