package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

const chat = `{"cmd":11,"from":"alice","to":"bob","chatType":2,"msgType":0,"content":"hi"}`

func pk(cmd packet.Cmd, body string) packet.Packet {
	return packet.Packet{Cmd: cmd, Body: []byte(body)}
}

// TestDecode runs every case three ways: the whole stream in one buffer, byte by byte,
// and in 7-byte chunks. All three must give the same packets, replies and outcome.
func TestDecode(t *testing.T) {
	upgrade := upgradeReq("/")
	big := `{"cmd":11,"content":"` + strings.Repeat("x", 70000) + `"}`
	tests := []struct {
		name string
		// maxFrame is codec.Options.MaxFrame; 0 means 1024.
		maxFrame int
		stream   []byte
		// wantHTTP is the prefix of the HTTP response expected at the front of the reply.
		wantHTTP    string
		wantPackets []packet.Packet
		// wantFrames describes the server frames of the reply (see describe).
		wantFrames []string
		wantClose  bool
		wantErr    packet.Status
	}{
		{
			name:     "upgrade only",
			stream:   upgrade,
			wantHTTP: "HTTP/1.1 101 Switching Protocols",
		},
		{
			name:        "upgrade and one text frame",
			stream:      cat(upgrade, text(chat)),
			wantHTTP:    "HTTP/1.1 101",
			wantPackets: []packet.Packet{pk(packet.CmdChatReq, chat)},
		},
		{
			name:        "binary frame is read like text",
			stream:      cat(upgrade, clientFrame(ws.OpBinary, true, `{"cmd":13,"hbbyte":1}`)),
			wantHTTP:    "HTTP/1.1 101",
			wantPackets: []packet.Packet{pk(packet.CmdHeartbeatReq, `{"cmd":13,"hbbyte":1}`)},
		},
		{
			name:        "numeric string cmd",
			stream:      cat(upgrade, text(`{"cmd":"11","chatType":"1","groupId":"g","content":"x"}`)),
			wantHTTP:    "HTTP/1.1 101",
			wantPackets: []packet.Packet{pk(packet.CmdChatReq, `{"cmd":"11","chatType":"1","groupId":"g","content":"x"}`)},
		},
		{
			name:        "cmd outside the table is passed on for the core to answer",
			stream:      cat(upgrade, text(`{"cmd":99}`)),
			wantHTTP:    "HTTP/1.1 101",
			wantPackets: []packet.Packet{pk(99, `{"cmd":99}`)},
		},
		{
			name:   "several frames merged",
			stream: cat(upgrade, text(`{"cmd":5,"userId":"a","password":"p"}`), text(chat), text(`{"cmd":13}`)),
			wantPackets: []packet.Packet{
				pk(packet.CmdLoginReq, `{"cmd":5,"userId":"a","password":"p"}`),
				pk(packet.CmdChatReq, chat),
				pk(packet.CmdHeartbeatReq, `{"cmd":13}`),
			},
			wantHTTP: "HTTP/1.1 101",
		},
		{
			name:        "16-bit and 64-bit lengths",
			maxFrame:    1 << 20,
			stream:      cat(upgrade, text(`{"cmd":11,"content":"`+strings.Repeat("y", 200)+`"}`), text(big)),
			wantHTTP:    "HTTP/1.1 101",
			wantPackets: []packet.Packet{pk(11, `{"cmd":11,"content":"`+strings.Repeat("y", 200)+`"}`), pk(11, big)},
		},
		{
			name:     "query login with username",
			stream:   upgradeReq("/?username=alice&password=s%20cret"),
			wantHTTP: "HTTP/1.1 101",
			wantPackets: []packet.Packet{
				pk(packet.CmdLoginReq, `{"cmd":5,"userId":"alice","password":"s cret","token":""}`),
			},
		},
		{
			name:     "query login with userId, then frames",
			stream:   cat(upgradeReq("/ws?userId=42&password=x"), text(chat)),
			wantHTTP: "HTTP/1.1 101",
			wantPackets: []packet.Packet{
				pk(packet.CmdLoginReq, `{"cmd":5,"userId":"42","password":"x","token":""}`),
				pk(packet.CmdChatReq, chat),
			},
		},
		{
			name:     "query login with userid",
			stream:   upgradeReq("/?userid=bob&password=y"),
			wantHTTP: "HTTP/1.1 101",
			wantPackets: []packet.Packet{
				pk(packet.CmdLoginReq, `{"cmd":5,"userId":"bob","password":"y","token":""}`),
			},
		},
		{
			name:     "query login with a token only",
			stream:   upgradeReq("/im?token=abc.def"),
			wantHTTP: "HTTP/1.1 101",
			wantPackets: []packet.Packet{
				pk(packet.CmdLoginReq, `{"cmd":5,"userId":"","password":"","token":"abc.def"}`),
			},
		},
		{
			name:     "query login in an absolute URI",
			stream:   upgradeReq("ws://im.example.com:8888/?username=carol&password=z"),
			wantHTTP: "HTTP/1.1 101",
			wantPackets: []packet.Packet{
				pk(packet.CmdLoginReq, `{"cmd":5,"userId":"carol","password":"z","token":""}`),
			},
		},
		{
			name:     "query without user or token is no login",
			stream:   upgradeReq("/?password=x&lang=en"),
			wantHTTP: "HTTP/1.1 101",
		},
		{
			name:     "malformed query pair is skipped",
			stream:   upgradeReq("/?bad=%zz&username=dave"),
			wantHTTP: "HTTP/1.1 101",
			wantPackets: []packet.Packet{
				pk(packet.CmdLoginReq, `{"cmd":5,"userId":"dave","password":"","token":""}`),
			},
		},
		{
			name:       "ping is answered with pong",
			stream:     cat(upgrade, clientFrame(ws.OpPing, true, "tick"), clientFrame(ws.OpPong, true, "ignored")),
			wantHTTP:   "HTTP/1.1 101",
			wantFrames: []string{"pong:tick"},
		},
		{
			name:       "close is echoed and ends reading",
			stream:     cat(upgrade, text(chat), clientFrame(ws.OpClose, true, string(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye"))), text(chat)),
			wantHTTP:   "HTTP/1.1 101",
			wantFrames: []string{"close:1001"},
			// The frame before the close is still delivered.
			wantPackets: []packet.Packet{pk(packet.CmdChatReq, chat)},
			wantClose:   true,
		},
		{
			name:       "empty close is answered with 1000",
			stream:     cat(upgrade, clientFrame(ws.OpClose, true, "")),
			wantHTTP:   "HTTP/1.1 101",
			wantFrames: []string{"close:1000"},
			wantClose:  true,
		},
		{
			name:       "close with a reserved status is answered with 1002",
			stream:     cat(upgrade, clientFrame(ws.OpClose, true, string(ws.NewCloseFrameBody(ws.StatusNoStatusRcvd, "")))),
			wantHTTP:   "HTTP/1.1 101",
			wantFrames: []string{"close:1002"},
			wantClose:  true,
		},
		{
			name:       "close with a one-byte payload is answered with 1002",
			stream:     cat(upgrade, clientFrame(ws.OpClose, true, "x")),
			wantHTTP:   "HTTP/1.1 101",
			wantFrames: []string{"close:1002"},
			wantClose:  true,
		},
		{
			name: "fragmented message with a ping in the middle",
			stream: cat(upgrade,
				clientFrame(ws.OpText, false, `{"cmd":11,`),
				clientFrame(ws.OpContinuation, false, `"content":`),
				clientFrame(ws.OpPing, true, "p"),
				clientFrame(ws.OpContinuation, true, `"frag"}`),
				text(`{"cmd":13}`)),
			wantHTTP:    "HTTP/1.1 101",
			wantFrames:  []string{"pong:p"},
			wantPackets: []packet.Packet{pk(11, `{"cmd":11,"content":"frag"}`), pk(13, `{"cmd":13}`)},
		},
		{
			name: "fragmented binary message",
			stream: cat(upgrade,
				clientFrame(ws.OpBinary, false, `{"cmd":`),
				clientFrame(ws.OpContinuation, true, `"5"}`)),
			wantHTTP:    "HTTP/1.1 101",
			wantPackets: []packet.Packet{pk(5, `{"cmd":"5"}`)},
		},
		{
			name:       "invalid JSON is answered and reading goes on",
			stream:     cat(upgrade, text(`hello`), text(chat)),
			wantHTTP:   "HTTP/1.1 101",
			wantFrames: []string{"text:10020"},
			// The reply comes in the same batch as the later packet.
			wantPackets: []packet.Packet{pk(11, chat)},
		},
		{
			name: "bodies without a usable cmd are answered",
			stream: cat(upgrade,
				text(`{"content":"no cmd"}`),
				text(`{"cmd":"eleven"}`),
				text(`{"cmd":300}`),
				text(`[{"cmd":11}]`),
				text(`null`),
				text(``),
				text(`{"cmd":11`)),
			wantHTTP:   "HTTP/1.1 101",
			wantFrames: []string{"text:10020", "text:10020", "text:10020", "text:10020", "text:10020", "text:10020"},
			// Only "cmd" is read here: a broken body with a cmd reaches the gateway,
			// which answers it with that command's response (10020).
			wantPackets: []packet.Packet{pk(11, `{"cmd":11`)},
		},
		{
			name:     "oversize frame",
			stream:   cat(upgrade, text(chat), text(`{"cmd":11,"content":"`+strings.Repeat("z", 1100)+`"}`)),
			wantHTTP: "HTTP/1.1 101",
			// Frames before the bad one are still delivered.
			wantPackets: []packet.Packet{pk(11, chat)},
			wantErr:     packet.StatusTooLarge,
		},
		{
			name:     "oversize frame is refused from its header alone",
			stream:   cat(upgrade, headerOnly(ws.OpText, true, 1<<40)),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusTooLarge,
		},
		{
			name: "oversize fragmented message",
			stream: cat(upgrade,
				clientFrame(ws.OpText, false, strings.Repeat("a", 600)),
				clientFrame(ws.OpContinuation, true, strings.Repeat("b", 600))),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusTooLarge,
		},
		{
			name:     "unmasked client frame",
			stream:   cat(upgrade, unmaskedFrame(ws.OpText, chat)),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "continuation without a start",
			stream:   cat(upgrade, clientFrame(ws.OpContinuation, true, `{"cmd":11}`)),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "new message inside a fragmented one",
			stream:   cat(upgrade, clientFrame(ws.OpText, false, `{"cmd"`), text(chat)),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "reserved opcode",
			stream:   cat(upgrade, rawFrame(ws.Header{Fin: true, OpCode: 0x3}, "x")),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "rsv bit without an extension",
			stream:   cat(upgrade, rawFrame(ws.Header{Fin: true, OpCode: ws.OpText, Rsv: ws.Rsv(true, false, false)}, chat)),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "fragmented control frame",
			stream:   cat(upgrade, clientFrame(ws.OpPing, false, "x")),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "control frame over 125 bytes",
			stream:   cat(upgrade, clientFrame(ws.OpPing, true, strings.Repeat("p", 126))),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "64-bit length with the top bit set",
			stream:   cat(upgrade, []byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}),
			wantHTTP: "HTTP/1.1 101",
			wantErr:  packet.StatusMalformedFrame,
		},
		{
			name:     "upgrade without a key",
			stream:   []byte("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
			wantHTTP: "HTTP/1.1 400 Bad Request",
			wantErr:  errPlain,
		},
		{
			name:     "upgrade with a wrong version",
			stream:   bytes.Replace(upgrade, []byte("Version: 13"), []byte("Version: 8"), 1),
			wantHTTP: "HTTP/1.1 426",
			wantErr:  errPlain,
		},
		{
			name:     "plain HTTP POST",
			stream:   []byte("POST /api/message/send HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"),
			wantHTTP: "HTTP/1.1 405",
			wantErr:  errPlain,
		},
		{
			name:     "garbage request line",
			stream:   []byte("\x16\x03\x01 hello\r\n\r\n"),
			wantHTTP: "HTTP/1.1 400 Bad Request",
			wantErr:  errPlain,
		},
		{
			name:     "HTTP/1.0",
			stream:   bytes.Replace(upgrade, []byte("HTTP/1.1"), []byte("HTTP/1.0"), 1),
			wantHTTP: "HTTP/1.1 505",
			wantErr:  errPlain,
		},
		{
			name:     "request header over the cap",
			stream:   cat([]byte("GET / HTTP/1.1\r\nCookie: "), bytes.Repeat([]byte("c"), MaxHeaderBytes), []byte("\r\n\r\n")),
			wantHTTP: "HTTP/1.1 431",
			wantErr:  packet.StatusTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxFrame := tt.maxFrame
			if maxFrame == 0 {
				maxFrame = 1024
			}
			var first result
			for _, chunk := range []int{0, 1, 7} {
				c := New(codec.Options{MaxFrame: maxFrame})
				r := feed(t, c, tt.stream, chunk)
				if got := errStatus(r.err); got != tt.wantErr {
					t.Fatalf("chunk %d: error %v (status %d), want status %d", chunk, r.err, got, tt.wantErr)
				}
				if r.close != tt.wantClose {
					t.Errorf("chunk %d: close = %v, want %v", chunk, r.close, tt.wantClose)
				}
				if !samePackets(r.packets, tt.wantPackets) {
					t.Errorf("chunk %d: packets\n%s\nwant\n%s", chunk, fmtPackets(r.packets), fmtPackets(tt.wantPackets))
				}
				httpResp, frames := splitReply(t, r.reply)
				if !strings.HasPrefix(httpResp, tt.wantHTTP) || (tt.wantHTTP == "") != (httpResp == "") {
					t.Errorf("chunk %d: HTTP response %q, want prefix %q", chunk, httpResp, tt.wantHTTP)
				}
				if got := describe(frames); !slices.Equal(got, tt.wantFrames) {
					t.Errorf("chunk %d: reply frames %q, want %q", chunk, got, tt.wantFrames)
				}
				if chunk == 0 {
					first = r
				} else if !bytes.Equal(r.reply, first.reply) {
					t.Errorf("chunk %d: reply differs from the whole-buffer reply:\n%q\n%q", chunk, r.reply, first.reply)
				}
			}
		})
	}
}

func samePackets(a, b []packet.Packet) bool {
	return slices.EqualFunc(a, b, func(x, y packet.Packet) bool {
		return x.Cmd == y.Cmd && bytes.Equal(x.Body, y.Body)
	})
}

func fmtPackets(ps []packet.Packet) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  ")
		b.WriteString(p.Cmd.String())
		b.WriteString(" ")
		b.Write(p.Body[:min(len(p.Body), 120)])
		b.WriteString("\n")
	}
	return b.String()
}

func TestUpgradeResponse(t *testing.T) {
	c := New(codec.Options{MaxFrame: 1024})
	if c.Upgraded() {
		t.Fatal("Upgraded before the request")
	}
	var out codec.Decoded
	req := upgradeReq("/")
	// Every strict prefix is a partial request: nothing consumed, nothing answered.
	for i := range len(req) {
		n, err := c.Decode(req[:i], &out)
		if n != 0 || err != nil || len(out.Reply) != 0 || len(out.Packets) != 0 {
			t.Fatalf("prefix of %d bytes: consumed %d, err %v, reply %q", i, n, err, out.Reply)
		}
	}
	n, err := c.Decode(req, &out)
	if err != nil || n != len(req) {
		t.Fatalf("Decode = %d, %v; want %d, nil", n, err, len(req))
	}
	resp := string(out.Reply)
	for _, want := range []string{
		"HTTP/1.1 101 Switching Protocols\r\n",
		"Upgrade: websocket\r\n",
		"Connection: Upgrade\r\n",
		"Sec-WebSocket-Accept: " + sampleAccept + "\r\n",
	} {
		if !strings.Contains(resp, want) {
			t.Errorf("response %q lacks %q", resp, want)
		}
	}
	if !strings.HasSuffix(resp, "\r\n\r\n") {
		t.Errorf("response %q is not a whole header block", resp)
	}
	if !c.Upgraded() {
		t.Error("not Upgraded after the 101")
	}
}

func TestInvalidBodyReply(t *testing.T) {
	c := New(codec.Options{MaxFrame: 1 << 20})
	bad := `{"cmd":"` + strings.Repeat("9", 5000) + `"}`
	r := feed(t, c, cat(upgradeReq("/"), text(`{"cmd":true}`), text(bad), text(`{"x":1}`)), 0)
	if r.err != nil {
		t.Fatal(r.err)
	}
	_, frames := splitReply(t, r.reply)
	if len(frames) != 3 {
		t.Fatalf("got %d reply frames, want 3", len(frames))
	}
	for i, f := range frames {
		var resp packet.Response
		if err := json.Unmarshal(f.payload, &resp); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if resp.Cmd != packet.CmdError || resp.Code != packet.StatusInvalidBody {
			t.Errorf("frame %d: cmd %d code %d, want 0 and %d", i, resp.Cmd, resp.Code, packet.StatusInvalidBody)
		}
		if !strings.HasPrefix(resp.Msg, "websocket message: ") || len(resp.Msg) > maxErrorMsg {
			t.Errorf("frame %d: msg %q", i, resp.Msg)
		}
		t.Logf("frame %d: %s", i, resp.Msg)
	}
	if !strings.Contains(string(frames[2].payload), `body has no \"cmd\"`) {
		t.Errorf("missing-cmd reply %s does not say so", frames[2].payload)
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name     string
		stream   []byte
		wantMsg  string
		wantCode ws.StatusCode
	}{
		{
			name:     "oversize",
			stream:   headerOnly(ws.OpText, true, 2000),
			wantMsg:  "websocket message of 2000 bytes exceeds the limit of 1024 bytes",
			wantCode: ws.StatusMessageTooBig,
		},
		{
			name:     "oversize fragments",
			stream:   cat(clientFrame(ws.OpText, false, strings.Repeat("a", 1000)), headerOnly(ws.OpContinuation, true, 100)),
			wantMsg:  "fragmented websocket message reaches 1100 bytes, over the limit of 1024 bytes",
			wantCode: ws.StatusMessageTooBig,
		},
		{
			name:     "unmasked",
			stream:   unmaskedFrame(ws.OpText, "{}"),
			wantMsg:  "websocket frame text: frames from client to server must be masked",
			wantCode: ws.StatusProtocolError,
		},
		{
			name:     "bad continuation",
			stream:   clientFrame(ws.OpContinuation, true, "{}"),
			wantMsg:  "websocket frame continuation: unexpected continuation data frame",
			wantCode: ws.StatusProtocolError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(codec.Options{MaxFrame: 1024})
			r := feed(t, c, cat(upgradeReq("/"), tt.stream), 0)
			var ce *codec.Error
			if !errors.As(r.err, &ce) {
				t.Fatalf("error %v, want a *codec.Error", r.err)
			}
			if ce.Cmd != packet.CmdError || ce.Msg != tt.wantMsg {
				t.Errorf("error cmd %d msg %q, want 0 and %q", ce.Cmd, ce.Msg, tt.wantMsg)
			}
			// The transport answers with the error packet, then says goodbye.
			wire := c.Encode(nil, ce.Packet())
			wire = c.Goodbye(wire, ce.Msg)
			frames, err := readFrames(wire)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 2 || frames[0].h.OpCode != ws.OpText || frames[1].h.OpCode != ws.OpClose {
				t.Fatalf("goodbye frames %q", describe(frames))
			}
			code, reason := ws.ParseCloseFrameData(frames[1].payload)
			if code != tt.wantCode || reason != tt.wantMsg[:min(len(tt.wantMsg), maxCloseReason)] {
				t.Errorf("close %d %q, want %d", code, reason, tt.wantCode)
			}
			// Decode after a failure refuses to go on.
			var out codec.Decoded
			if _, err := c.Decode(text(chat), &out); !errors.Is(err, ErrFailed) {
				t.Errorf("Decode after failure: %v, want ErrFailed", err)
			}
		})
	}
}

func TestGoodbye(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes of 2-byte runes
	tests := []struct {
		name       string
		upgrade    bool
		closeFirst bool
		reason     string
		code       ws.StatusCode // 0: Goodbye, else GoodbyeCode
		want       []string
		wantReason string
	}{
		{
			name:       "normal",
			upgrade:    true,
			reason:     "server shutting down",
			want:       []string{"close:1000"},
			wantReason: "server shutting down",
		},
		{
			name:       "reason cut on a rune boundary",
			upgrade:    true,
			reason:     long,
			want:       []string{"close:1000"},
			wantReason: long[:122],
		},
		{
			name:       "invalid UTF-8 reason is repaired",
			upgrade:    true,
			reason:     "bad \xff byte",
			want:       []string{"close:1000"},
			wantReason: "bad \uFFFD byte",
		},
		{
			name:       "explicit policy violation",
			upgrade:    true,
			reason:     "kicked",
			code:       ws.StatusPolicyViolation,
			want:       []string{"close:1008"},
			wantReason: "kicked",
		},
		{
			name:    "nothing before the upgrade",
			upgrade: false,
			reason:  "x",
		},
		{
			name:       "nothing after the close echo",
			upgrade:    true,
			closeFirst: true,
			reason:     "x",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(codec.Options{MaxFrame: 1024})
			if tt.upgrade {
				stream := upgradeReq("/")
				if tt.closeFirst {
					stream = cat(stream, clientFrame(ws.OpClose, true, ""))
				}
				if r := feed(t, c, stream, 0); r.err != nil {
					t.Fatal(r.err)
				}
			}
			var b []byte
			if tt.code != 0 {
				b = c.GoodbyeCode(nil, tt.code, tt.reason)
			} else {
				b = c.Goodbye(nil, tt.reason)
			}
			// A second goodbye adds nothing.
			if again := c.Goodbye(nil, "again"); len(again) != 0 {
				t.Errorf("second Goodbye wrote %q", again)
			}
			frames, err := readFrames(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(frames); !slices.Equal(got, tt.want) {
				t.Fatalf("frames %q, want %q", got, tt.want)
			}
			if len(frames) == 1 {
				if n := len(frames[0].payload); n > ws.MaxControlFramePayloadSize {
					t.Errorf("close payload of %d bytes", n)
				}
				code, reason := ws.ParseCloseFrameData(frames[0].payload)
				if err := ws.CheckCloseFrameData(code, reason); err != nil {
					t.Errorf("close frame invalid: %v", err)
				}
				if reason != tt.wantReason {
					t.Errorf("reason %q, want %q", reason, tt.wantReason)
				}
			}
		})
	}
}

// TestEncodeRoundTrip encodes packets of every header size, reads them back with
// gobwas/ws, masks them as a client would and decodes them again.
func TestEncodeRoundTrip(t *testing.T) {
	c := New(codec.Options{MaxFrame: 1 << 20})
	if got := c.Encode([]byte("x"), pk(11, chat)); string(got) != "x" {
		t.Fatalf("Encode before the upgrade wrote %q", got)
	}
	if r := feed(t, c, upgradeReq("/"), 0); r.err != nil {
		t.Fatal(r.err)
	}
	for _, size := range []int{0, 1, 125, 126, 127, 65535, 65536, 100000} {
		// Exactly size bytes: valid JSON from 10 bytes up, a cut object below.
		body := []byte(`{"cmd":11}`)[:min(size, 10)]
		if size > 10 {
			body = []byte(`{"cmd":11` + strings.Repeat(" ", size-10) + `}`)
		}
		wire := c.Encode([]byte("prefix"), packet.Packet{Cmd: 11, Body: body})
		if !bytes.HasPrefix(wire, []byte("prefix")) {
			t.Fatalf("size %d: dst not kept", size)
		}
		frames, err := readFrames(wire[len("prefix"):])
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(frames) != 1 || frames[0].h.OpCode != ws.OpText || !bytes.Equal(frames[0].payload, body) {
			t.Fatalf("size %d: frames %+v", size, frames)
		}
		if want := ws.HeaderSize(frames[0].h) + len(body); len(wire)-len("prefix") != want {
			t.Errorf("size %d: %d bytes on the wire, want %d", size, len(wire)-len("prefix"), want)
		}
		// The same bytes as gobwas/ws writes.
		if want := ws.MustCompileFrame(ws.NewTextFrame(body)); !bytes.Equal(wire[len("prefix"):], want) {
			t.Errorf("size %d: differs from ws.CompileFrame", size)
		}

		// Back through Decode as a client's masked frame.
		f := ws.MaskFrameInPlace(ws.NewTextFrame(slices.Clone(frames[0].payload)))
		var in bytes.Buffer
		if err := ws.WriteFrame(&in, f); err != nil {
			t.Fatal(err)
		}
		var out codec.Decoded
		n, err := c.Decode(in.Bytes(), &out)
		if err != nil || n != in.Len() {
			t.Fatalf("size %d: Decode = %d, %v", size, n, err)
		}
		if size >= 10 {
			if len(out.Packets) != 1 || out.Packets[0].Cmd != 11 || !bytes.Equal(out.Packets[0].Body, body) {
				t.Errorf("size %d: decoded %d packets", size, len(out.Packets))
			}
		} else if len(out.Packets) != 0 || len(out.Reply) == 0 {
			t.Errorf("size %d: a truncated body must be answered, not passed on", size)
		}
	}
}

func TestDefaultMaxFrame(t *testing.T) {
	c := New(codec.Options{})
	r := feed(t, c, cat(upgradeReq("/"), headerOnly(ws.OpText, true, DefaultMaxFrame+1)), 0)
	if errStatus(r.err) != packet.StatusTooLarge {
		t.Fatalf("error %v, want too large", r.err)
	}
	c = New(codec.Options{})
	r = feed(t, c, cat(upgradeReq("/"), headerOnly(ws.OpText, true, DefaultMaxFrame)), 0)
	if r.err != nil {
		t.Fatalf("a frame of exactly DefaultMaxFrame bytes: %v", r.err)
	}
}

// TestConcurrentEncodeGoodbye checks, under -race, that Encode and Goodbye may run on
// another goroutine while Decode runs, as a transport pushes and kicks.
func TestConcurrentEncodeGoodbye(t *testing.T) {
	c := New(codec.Options{MaxFrame: 1024})
	if r := feed(t, c, upgradeReq("/"), 0); r.err != nil {
		t.Fatal(r.err)
	}
	done := make(chan []byte)
	go func() {
		var b []byte
		for range 1000 {
			b = c.Encode(b, pk(11, chat))
		}
		b = c.Goodbye(b, "kicked")
		done <- b
	}()
	frame := text(chat)
	var out codec.Decoded
	for range 1000 {
		out.Reset()
		if _, err := c.Decode(frame, &out); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	if _, err := c.Decode(clientFrame(ws.OpClose, true, ""), &out); err != nil {
		t.Fatal(err)
	}
	b := <-done
	frames, err := readFrames(append(b, out.Reply...))
	if err != nil {
		t.Fatal(err)
	}
	closes := 0
	for _, f := range frames {
		if f.h.OpCode == ws.OpClose {
			closes++
		}
	}
	if closes != 1 {
		t.Errorf("%d close frames between Goodbye and the echo, want exactly 1", closes)
	}
}

func TestPartialMessage(t *testing.T) {
	c := New(codec.Options{})
	steps := []struct {
		in      []byte
		partial bool
	}{
		{in: upgradeReq("/"), partial: false},
		{in: clientFrame(ws.OpText, false, `{"cmd":13,`), partial: true},
		{in: clientFrame(ws.OpPing, true, "p"), partial: true}, // a control frame between fragments
		{in: clientFrame(ws.OpContinuation, false, `"hbbyte"`), partial: true},
		{in: clientFrame(ws.OpContinuation, true, `:1}`), partial: false},
		{in: text(`{"cmd":13}`), partial: false},
	}
	for i, s := range steps {
		var d codec.Decoded
		if n, err := c.Decode(s.in, &d); err != nil || n != len(s.in) {
			t.Fatalf("step %d: consumed %d of %d, err %v", i, n, len(s.in), err)
		}
		if c.Partial() != s.partial {
			t.Errorf("step %d: Partial %v, want %v", i, c.Partial(), s.partial)
		}
	}
}
