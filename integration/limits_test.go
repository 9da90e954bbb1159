package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Untrusted input limits: slow HTTP bodies (limits.body_timeout), declared over-limit
// bodies, frames trickled a byte at a time (limits.frame_timeout), invalid UTF-8.

// rawHTTP is an HTTP/1.1 client over a plain socket, for requests no well-behaved
// client sends: bodies that arrive slowly or never.
type rawHTTP struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRawHTTP(t *testing.T, addr string) *rawHTTP {
	t.Helper()
	nc := dialRaw(t, addr)
	return &rawHTTP{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// head writes the request line and headers of a POST to path with the given
// Content-Length, and the first bytes of its body.
func (c *rawHTTP) head(path string, contentLength int, body string) {
	c.t.Helper()
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: timgw\r\nX-API-Key: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		path, testAPIKey, contentLength, body)
	if _, err := io.WriteString(c.nc, req); err != nil {
		c.t.Fatalf("write request: %v", err)
	}
}

// trickle writes one byte of filler every interval until the connection fails or stop
// is closed: a client sending its body slowly.
func (c *rawHTTP) trickle(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := c.nc.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// response reads one response within wait; body is nil when it is not JSON.
func (c *rawHTTP) response() (*http.Response, map[string]any) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	r, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("no response within %s: %v", wait, err)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		c.t.Fatalf("read response body: %v", err)
	}
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return r, body
}

// mustClosed fails unless the server closes the connection within wait.
func (c *rawHTTP) mustClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	if n, err := c.br.Read(make([]byte, 1)); err == nil {
		c.t.Fatalf("connection still open: read %d more bytes", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection still open %s after the answer", wait)
	}
}

// TestHTTPOverLimitBodyRefusedAtOnce sends the headers of a 100 MB send request, then
// its body a byte at a time: the 413 (code 10026) comes at once, not after the body or
// the 30 s read timeout, and the connection is closed.
func TestHTTPOverLimitBodyRefusedAtOnce(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, path := range []string{"/api/v1/messages", "/api/message/send"} {
		t.Run(path, func(t *testing.T) {
			c := dialRawHTTP(t, g.Addr)
			c.head(path, 100<<20, `{"from":"a","to":"b","chatType":2,"content":"`)
			defer c.trickle(200 * time.Millisecond)()
			r, body := c.response()
			if r.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %s, want 413; body %v", r.Status, body)
			}
			if code, _ := body["code"].(float64); packet.Status(code) != packet.StatusTooLarge {
				t.Errorf("code %v, want %d; body %v", body["code"], packet.StatusTooLarge, body)
			}
			c.mustClosed()
		})
	}
}

// TestHTTPSlowBodyTimesOut sends bodies under the size limit too slowly: with
// limits.body_timeout 1s, each is refused and its connection closed well before the
// 30 s request read timeout, whether hertz is still reading the body's start (408) or
// the handler is (400, code 10020). A connection whose body arrived in time stays
// usable past body_timeout.
func TestHTTPSlowBodyTimesOut(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "bodytimeout", gwConfig{BodyTimeout: time.Second, MaxFrameBytes: 64 << 10})
	cases := []struct {
		name   string
		sent   int // body bytes sent at once; the rest trickles
		status int
		code   packet.Status // 0: not a JSON answer (hertz's own)
	}{
		{name: "start of the body slow", sent: 10, status: http.StatusRequestTimeout},
		{name: "end of the body slow", sent: 9000, status: http.StatusBadRequest, code: packet.StatusInvalidBody},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRawHTTP(t, g.Addr)
			c.head("/api/v1/messages", 20000, strings.Repeat(" ", tc.sent))
			defer c.trickle(300 * time.Millisecond)()
			r, body := c.response()
			if r.StatusCode != tc.status {
				t.Fatalf("status %s, want %d; body %v", r.Status, tc.status, body)
			}
			if tc.code != 0 {
				code, _ := body["code"].(float64)
				msg, _ := body["msg"].(string)
				if packet.Status(code) != tc.code || !strings.Contains(msg, "body_timeout") {
					t.Errorf("answer %v, want code %d naming body_timeout", body, tc.code)
				}
			}
			c.mustClosed()
		})
	}
	t.Run("keep-alive after a body", func(t *testing.T) {
		t.Parallel()
		c := dialRawHTTP(t, g.Addr)
		send := fmt.Sprintf(`{"from":%q,"to":%q,"chatType":2,"content":"x"}`, uid("ka-from"), uid("ka-to"))
		for i := range 2 {
			c.head("/api/v1/messages", len(send), send)
			r, body := c.response()
			if r.StatusCode != http.StatusOK {
				t.Fatalf("request %d: status %s, body %v", i+1, r.Status, body)
			}
			time.Sleep(1500 * time.Millisecond) // past body_timeout, within the idle timeout
		}
	})
}

// invalidUTF8 is chat content with a byte that is not UTF-8 (a JSON decoder would turn
// it into U+FFFD).
const invalidUTF8 = "caf\xe9 au lait"

// TestInvalidUTF8Refused sends a chat whose content is not valid UTF-8 over t-im TCP,
// WebSocket and the HTTP API (v1 and J-IM): each is refused with code 10036 and
// delivers nothing; the same connection then sends valid multi-byte content, which
// arrives exactly as sent.
func TestInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	bad := func(to string) string {
		return `{"cmd":11,"to":"` + to + `","chatType":2,"msgType":0,"content":"` + invalidUTF8 + `"}`
	}
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			from, to := uid("utf8-from"), uid("utf8-to")
			rc := g.login(t, epTCP, to)
			sc := g.login(t, ep, from)
			r, err := sc.Request(packet.CmdChatReq, bad(to), wait)
			mustCode(t, "invalid UTF-8 chat", r, err, packet.StatusInvalidUTF8)
			if !strings.Contains(r.Msg, "0xe9") {
				t.Errorf("answer %q does not name the bad byte 0xe9", r.Msg)
			}
			mustNotGet(t, rc, packet.CmdChatReq, "receiver of the refused chat")
			r, err = sc.Request(packet.CmdChatReq, chatBody(ep, to, "café ✓"), wait)
			mustAccepted(t, r, err)
			checkDelivered(t, mustRecvChat(t, rc, "receiver"), from, to, "café ✓")
		})
	}
	t.Run("http", func(t *testing.T) {
		t.Parallel()
		from, to := uid("utf8-from"), uid("utf8-to")
		rc := g.login(t, epTCP, to)
		api := g.api(t, epHTTP)
		for _, tc := range []struct {
			path   string
			status int
		}{
			{path: "/api/v1/messages", status: http.StatusBadRequest},
			{path: "/api/message/send", status: http.StatusOK}, // J-IM answers 200, the code says
		} {
			body := `{"from":"` + from + `","to":"` + to + `","chatType":2,"content":"` + invalidUTF8 + `"}`
			r, err := api.Post(tc.path, body)
			if err != nil {
				t.Fatalf("POST %s: %v", tc.path, err)
			}
			if code, _ := apiCode(r); r.Status != tc.status || code != packet.StatusInvalidUTF8 {
				t.Errorf("POST %s: %s, want HTTP %d code %d", tc.path, r, tc.status, packet.StatusInvalidUTF8)
			}
		}
		mustNotGet(t, rc, packet.CmdChatReq, "receiver of the refused chats")
		mustAPISend(t, api, map[string]any{"from": from, "to": to, "chatType": 2, "content": "café ✓"}, packet.StatusOK)
		checkDelivered(t, mustRecvChat(t, rc, "receiver"), from, to, "café ✓")
	})
}

// TestMQTTInvalidUTF8Refused publishes payloads that are not valid UTF-8 (text and a
// JSON chat body): the gateway refuses them with 10036 (the plugin logs the refusal:
// MQTT 3.1.1 has no negative PUBACK) and the receiver gets only the valid message sent
// after them, exactly as sent.
func TestMQTTInvalidUTF8Refused(t *testing.T) {
	needMosquitto(t)
	g := mqttGateway(t)
	to, mq := uid("utf8-tcp"), uid("utf8-mq")
	rc := g.login(t, epTCP, to)
	off := g.log.Len()
	for _, payload := range []string{invalidUTF8, `{"content":"` + invalidUTF8 + `"}`} {
		mustPub(t, g.Addr, mq, "chat/user/"+to, payload, 1)
	}
	mustPub(t, g.Addr, mq, "chat/user/"+to, "café ✓", 1)
	m := mustRecvChat(t, rc, "receiver")
	checkChat(t, m, mq, "café ✓", packet.ChatTypePrivate)
	mustNotGet(t, rc, packet.CmdChatReq, "receiver")
	waitLogCount(t, g.gateway, off, "code=10036", 2)
}

// waitLogCount waits until g's log from offset off holds sub at least n times (the log
// arrives through a pipe), failing t after wait, or when it holds more.
func waitLogCount(t *testing.T, g *gateway, off int, sub string, n int) {
	t.Helper()
	count := func() int { return strings.Count(g.log.From(off), sub) }
	for end := time.Now().Add(wait); count() < n && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if got := count(); got != n {
		t.Errorf("the gateway logged %q %d times, want %d", sub, got, n)
	}
}

// TestFrameTimeout trickles one valid frame a byte every 300 ms (it would take more
// than 10 s to complete) over t-im TCP and WebSocket, plain and TLS, and a WebSocket
// message as whole one-byte fragments, with limits.frame_timeout 1s: each connection
// gets cmd 0 with code 10037 and is closed, though every byte resets its idle timeout;
// a connection that sends whole frames stays open.
func TestFrameTimeout(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "frametimeout", gwConfig{TLS: true, FrameTimeout: time.Second})
	body := []byte(`{"cmd":13,"hbbyte":1,"padding":"` + strings.Repeat("x", 40) + `"}`)
	bytewise := func(frame []byte) (chunks [][]byte) {
		for i := range frame {
			chunks = append(chunks, frame[i:i+1])
		}
		return chunks
	}
	var fragments [][]byte // a text message as non-final one-byte fragments
	for i, b := range body {
		op := byte(0x0) // continuation
		if i == 0 {
			op = 0x1 // text
		}
		f := timclient.WSFrame(op, []byte{b})
		f[0] &^= 0x80 // not the final fragment
		fragments = append(fragments, f)
	}
	cases := []struct {
		name   string
		ep     endpoint
		chunks [][]byte // written one every 300 ms
	}{
		{name: "tcp", ep: epTCP, chunks: bytewise(timclient.TCPFrame(packet.CmdHeartbeatReq, body))},
		{name: "tls", ep: epTLS, chunks: bytewise(timclient.TCPFrame(packet.CmdHeartbeatReq, body))},
		{name: "ws", ep: epWS, chunks: bytewise(timclient.WSText(body))},
		{name: "wss", ep: epWSS, chunks: bytewise(timclient.WSText(body))},
		{name: "ws fragments", ep: epWS, chunks: fragments},
	}
	t.Cleanup(func() { waitLogCount(t, g, 0, "connection closed: frame timeout", len(cases)) }) // after the subtests
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := g.dial(t, tc.ep)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for _, b := range tc.chunks {
					select {
					case <-stop:
						return
					case <-time.After(300 * time.Millisecond):
					}
					if c.WriteRaw(b) != nil {
						return
					}
				}
			}()
			got, err := c.ExpectClosed(wait)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, p := range got {
				if r, err := timclient.DecodeResponse(p); err == nil && p.Cmd == packet.CmdError && r.Code == packet.StatusFrameTimeout {
					found = true
				}
			}
			if !found {
				t.Errorf("received %s before the close, want cmd 0 with code %d", timclient.Describe(got), packet.StatusFrameTimeout)
			}
		})
	}
	t.Run("whole frames", func(t *testing.T) {
		t.Parallel()
		c := g.dial(t, epTCP)
		for range 3 {
			mustSync(t, c, "client sending whole frames")
			time.Sleep(700 * time.Millisecond)
		}
	})
}
