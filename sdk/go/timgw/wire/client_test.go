package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/packet"
)

// pipe returns a client Conn of protocol proto wired to the returned server end.
func pipe(t *testing.T, proto Proto) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		if proto == WS {
			if _, err := ws.Upgrade(s); err != nil {
				s.Close()
				close(acc)
				return
			}
		}
		acc <- s
	}()
	scheme := "tcp://"
	if proto == WS {
		scheme = "ws://"
	}
	c, err := Dial(scheme+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := <-acc
	if !ok {
		t.Fatal("server side failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func TestTCPFrameAcrossWritesAndTimeout(t *testing.T) {
	c, s := pipe(t, TCP)
	f := TCPFrame(packet.CmdChatReq, []byte(`{"cmd":11,"content":"hi"}`))
	if _, err := s.Write(f[:3]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(50 * time.Millisecond); err == nil {
		t.Fatal("Recv returned a packet from 3 bytes")
	}
	// the timeout must not lose the 3 bytes already read
	if _, err := s.Write(append(f[3:], TCPFrame(packet.CmdHeartbeatReq, []byte(`{}`))...)); err != nil {
		t.Fatal(err)
	}
	p, err := c.Expect(packet.CmdHeartbeatReq, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Body) != `{}` {
		t.Fatalf("heartbeat body %q", p.Body)
	}
	p, err = c.Recv(time.Second)
	if err != nil || p.Cmd != packet.CmdChatReq || string(p.Body) != `{"cmd":11,"content":"hi"}` {
		t.Fatalf("set-aside chat: %v %v %q", err, p.Cmd, p.Body)
	}
	s.Close()
	if _, err := c.ExpectClosed(time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestTCPSend(t *testing.T) {
	c, s := pipe(t, TCP)
	if err := c.Send(packet.CmdLoginReq, packet.Login{UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	h := make([]byte, TCPHeaderLen)
	if _, err := io.ReadFull(s, h); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	if h[0] != 5 || !strings.Contains(string(body), `"userId":"u"`) {
		t.Fatalf("frame %v %q", h, body)
	}
}

func TestWSFramesFragmentsPingClose(t *testing.T) {
	c, s := pipe(t, WS)
	w := bufio.NewWriter(s)
	_ = ws.WriteFrame(w, ws.NewPingFrame([]byte("p")))
	_ = ws.WriteFrame(w, ws.NewFrame(ws.OpText, false, []byte(`{"cmd":1`)))
	_ = ws.WriteFrame(w, ws.NewFrame(ws.OpContinuation, true, []byte(`3,"hbbyte":1}`)))
	_ = ws.WriteFrame(w, ws.NewTextFrame([]byte(`{"cmd":"12","code":10000}`)))
	_ = ws.WriteFrame(w, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	p, err := c.Recv(time.Second)
	if err != nil || p.Cmd != packet.CmdHeartbeatReq {
		t.Fatalf("fragmented message: %v %v %q", err, p.Cmd, p.Body)
	}
	// the client answered the ping with a masked pong
	_ = s.SetReadDeadline(time.Now().Add(time.Second))
	f, err := ws.ReadFrame(s)
	if err != nil || f.Header.OpCode != ws.OpPong || !f.Header.Masked {
		t.Fatalf("pong: %v %+v", err, f.Header)
	}
	p, err = c.Recv(time.Second)
	if err != nil || p.Cmd != packet.CmdChatResp {
		t.Fatalf("string cmd: %v %v %q", err, p.Cmd, p.Body)
	}
	_, err = c.Recv(time.Second)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "bye" || !errors.Is(err, ErrClosed) {
		t.Fatalf("close: %v", err)
	}
}

func TestWSSendAddsCmd(t *testing.T) {
	c, s := pipe(t, WS)
	for _, tc := range []struct {
		body any
		want string
	}{
		{body: `{"userId":"u"}`, want: `{"cmd":5,"userId":"u"}`},
		{body: `{}`, want: `{"cmd":5}`},
		{body: `{"cmd":"5","userId":"u"}`, want: `{"cmd":"5","userId":"u"}`},
		{body: `not json`, want: `not json`},
	} {
		if err := c.Send(packet.CmdLoginReq, tc.body); err != nil {
			t.Fatal(err)
		}
		_ = s.SetReadDeadline(time.Now().Add(time.Second))
		f, err := ws.ReadFrame(s)
		if err != nil {
			t.Fatal(err)
		}
		f = ws.UnmaskFrameInPlace(f)
		if string(f.Payload) != tc.want {
			t.Errorf("Send(%v): sent %q, want %q", tc.body, f.Payload, tc.want)
		}
	}
}

func TestDialBadAddress(t *testing.T) {
	for _, a := range []string{"http://127.0.0.1:1", "nonsense"} {
		if _, err := Dial(a, nil); err == nil {
			t.Errorf("Dial(%q) succeeded", a)
		}
	}
}

func TestAPIDoSendsKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get(APIKeyHeader)+" "+r.URL.RequestURI())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	a := NewAPI("http://"+ln.Addr().String(), "k1", nil)
	r, err := a.Get("/api/user/online?userid=x")
	if err != nil || r.Status != 200 || string(r.Body) != "k1 /api/user/online?userid=x" {
		t.Fatalf("%v %v", r, err)
	}
}

// A reader of its own takes a connection over after a login: Buffered holds what came
// after the login response, and the rest of the stream follows on NetConn.
func TestExpectStatusThenBuffered(t *testing.T) {
	c, s := pipe(t, TCP)
	chat := TCPFrame(packet.CmdChatReq, []byte(`{"cmd":11,"content":"after the login"}`))
	login := TCPFrame(packet.CmdLoginResp, []byte(`{"cmd":6,"code":10007}`))
	if _, err := s.Write(append(login, chat...)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExpectStatus(packet.CmdLoginResp, packet.StatusLoginOK, time.Second); err != nil {
		t.Fatal(err)
	}
	rest := c.Buffered()
	if len(rest) < len(chat) {
		_ = c.NetConn().SetReadDeadline(time.Now().Add(time.Second))
		more := make([]byte, len(chat)-len(rest))
		if _, err := io.ReadFull(c.NetConn(), more); err != nil {
			t.Fatal(err)
		}
		rest = append(rest, more...)
	}
	if string(rest) != string(chat) {
		t.Fatalf("rest %q, want the chat frame %q", rest, chat)
	}

	// A refused status is a *StatusError carrying the response.
	c2, s2 := pipe(t, TCP)
	if _, err := s2.Write(TCPFrame(packet.CmdLoginResp, []byte(`{"cmd":6,"code":10008}`))); err != nil {
		t.Fatal(err)
	}
	r, err := c2.ExpectStatus(packet.CmdLoginResp, packet.StatusLoginOK, time.Second)
	var se *StatusError
	if !errors.As(err, &se) || r == nil || r.Code != packet.StatusLoginFailed {
		t.Fatalf("got %v, %v: want a *StatusError with code 10008", r, err)
	}
}

// Frames appended to one buffer reach the server as separate packets.
func TestAppendFrames(t *testing.T) {
	var b []byte
	b = AppendTCPFrame(b, packet.CmdChatReq, []byte(`{"n":1}`))
	b = AppendTCPFrame(b, packet.CmdHeartbeatReq, []byte(`{"n":2}`))
	want := append(TCPFrame(packet.CmdChatReq, []byte(`{"n":1}`)), TCPFrame(packet.CmdHeartbeatReq, []byte(`{"n":2}`))...)
	if string(b) != string(want) {
		t.Fatalf("AppendTCPFrame: %q, want %q", b, want)
	}

	c, s := pipe(t, WS)
	w := AppendWSText(AppendWSText(nil, []byte(`{"cmd":11}`)), []byte(`{"cmd":13}`))
	if err := c.WriteRaw(w); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(s)
	for _, want := range []string{`{"cmd":11}`, `{"cmd":13}`} {
		f, err := ws.ReadFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Header.Masked || f.Header.OpCode != ws.OpText || !f.Header.Fin {
			t.Fatalf("header %+v: want a final masked text frame", f.Header)
		}
		f = ws.UnmaskFrameInPlace(f)
		if string(f.Payload) != want {
			t.Fatalf("payload %q, want %q", f.Payload, want)
		}
	}
}
