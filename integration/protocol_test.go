package integration

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestHandshakeAndHeartbeat checks cmd 1 → cmd 2 and cmd 13 → cmd 13, before login,
// on every socket form.
func TestHandshakeAndHeartbeat(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, ep := range []endpoint{epTCP, epWS, epTLS, epWSS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			c := g.dial(t, ep)
			if _, err := c.Request(packet.CmdHandshakeReq, `{"cmd":1,"hbyte":1}`, wait); err != nil {
				t.Errorf("handshake: %v", err)
			}
			if _, err := c.Request(packet.CmdHeartbeatReq, `{"cmd":13,"hbbyte":1}`, wait); err != nil {
				t.Errorf("heartbeat: %v", err)
			}
		})
	}
}

// frame is the TCP wire form of a packet with a JSON body.
func frame(cmd packet.Cmd, body string) []byte { return timclient.TCPFrame(cmd, []byte(body)) }

// writeByteByByte writes b one byte per write, pausing between writes so that the
// bytes reach the server in separate segments.
func writeByteByByte(t *testing.T, c *timclient.Conn, b []byte) {
	t.Helper()
	for i := range b {
		if err := c.WriteRaw(b[i : i+1]); err != nil {
			t.Fatalf("write byte %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// expectSequence reads packets from c and requires exactly the commands want, in
// order, returning them.
func expectSequence(t *testing.T, c *timclient.Conn, want ...packet.Cmd) []packet.Packet {
	t.Helper()
	var got []packet.Packet
	for i, cmd := range want {
		p, err := c.Recv(wait)
		if err != nil {
			t.Fatalf("packet %d (want cmd %d): %v; got so far: %s", i, cmd, err, timclient.Describe(got))
		}
		got = append(got, p)
		if p.Cmd != cmd {
			t.Fatalf("packet %d is cmd %d, want %d; got so far: %s", i, p.Cmd, cmd, timclient.Describe(got))
		}
	}
	return got
}

// TestTCPFramesSplitByteByByte writes frames one byte at a time: the first one (which
// the port sniffs) and later ones.
func TestTCPFramesSplitByteByByte(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	user, peer := uid("split"), uid("split-peer")
	pc := g.login(t, epWS, peer)
	c := g.dial(t, epTCP)

	writeByteByByte(t, c, frame(packet.CmdLoginReq, `{"userId":"`+user+`","password":"x"}`))
	r, err := timclient.DecodeResponse(expectSequence(t, c, packet.CmdLoginResp)[0])
	mustCode(t, "login written byte by byte", r, err, packet.StatusLoginOK)

	writeByteByByte(t, c, frame(packet.CmdChatReq, `{"cmd":11,"to":"`+peer+`","chatType":2,"content":"split"}`))
	r, err = timclient.DecodeResponse(expectSequence(t, c, packet.CmdChatResp)[0])
	mustAccepted(t, r, err)
	if m := mustRecvChat(t, pc, "peer"); m.Content != "split" {
		t.Errorf("peer got %q", m.Content)
	}
}

// TestTCPFramesMerged writes several frames in one write (the first write of the
// connection, then a later one), and a frame whose halves end one write and start the
// next: every request is answered, in order.
func TestTCPFramesMerged(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	user, group := uid("merged"), uid("merged-g")
	c := g.dial(t, epTCP)

	var b []byte
	b = append(b, frame(packet.CmdLoginReq, `{"userId":"`+user+`","password":"x"}`)...)
	b = append(b, frame(packet.CmdJoinGroupReq, `{"groupId":"`+group+`"}`)...)
	b = append(b, frame(packet.CmdHeartbeatReq, `{"cmd":13,"hbbyte":1}`)...)
	b = append(b, frame(packet.CmdGetUserReq, `{"userId":"`+user+`","type":0}`)...)
	if err := c.WriteRaw(b); err != nil {
		t.Fatal(err)
	}
	ps := expectSequence(t, c, packet.CmdLoginResp, packet.CmdJoinGroupResp, packet.CmdHeartbeatReq, packet.CmdGetUserResp)
	for i, want := range map[int]packet.Status{0: packet.StatusLoginOK, 1: packet.StatusJoinGroupOK, 3: packet.StatusGetOnlineOK} {
		r, err := timclient.DecodeResponse(ps[i])
		mustCode(t, fmt.Sprintf("answer %d", i), r, err, want)
	}

	// three heartbeats, the last split across two writes, the second write also carrying
	// a whole fourth one
	hb := frame(packet.CmdHeartbeatReq, `{"cmd":13,"hbbyte":1}`)
	first := append(append(bytes.Clone(hb), hb...), hb[:7]...)
	second := append(bytes.Clone(hb[7:]), hb...)
	if err := c.WriteRaw(first); err != nil {
		t.Fatal(err)
	}
	expectSequence(t, c, packet.CmdHeartbeatReq, packet.CmdHeartbeatReq)
	if err := c.WriteRaw(second); err != nil {
		t.Fatal(err)
	}
	expectSequence(t, c, packet.CmdHeartbeatReq, packet.CmdHeartbeatReq)
}

// TestWebSocketFramesSplitAndMerged writes WebSocket frames byte by byte and several
// in one write.
func TestWebSocketFramesSplitAndMerged(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	user := uid("wsframes")
	c := g.dial(t, epWS)

	writeByteByByte(t, c, timclient.WSText([]byte(`{"cmd":5,"userId":"`+user+`","password":"x"}`)))
	r, err := timclient.DecodeResponse(expectSequence(t, c, packet.CmdLoginResp)[0])
	mustCode(t, "login written byte by byte", r, err, packet.StatusLoginOK)

	hb := timclient.WSText([]byte(`{"cmd":"13","hbbyte":"1"}`))
	gu := timclient.WSText([]byte(`{"cmd":"17","userId":"` + user + `","type":"0"}`))
	merged := append(append(append(bytes.Clone(hb), gu...), hb...), gu[:3]...)
	if err := c.WriteRaw(merged); err != nil {
		t.Fatal(err)
	}
	expectSequence(t, c, packet.CmdHeartbeatReq, packet.CmdGetUserResp, packet.CmdHeartbeatReq)
	if err := c.WriteRaw(gu[3:]); err != nil {
		t.Fatal(err)
	}
	expectSequence(t, c, packet.CmdGetUserResp)
}

// TestMalformedJSON sends bodies that are not JSON: over TCP a chat frame is answered
// with cmd 12 code 10020, over WebSocket a text frame with {"cmd":0,"code":10020}; the
// connection stays open either way. A WebSocket object cut short after its "cmd" may
// also be answered as that command (cmd 12), which a t-im client waiting for its chat
// answer handles as well.
func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, tc := range []struct {
		name string
		ep   endpoint
		body string
		cmds []packet.Cmd // acceptable commands of the answer
	}{
		{name: "tcp chat body", ep: epTCP, body: `{"to":"x","content":`, cmds: []packet.Cmd{packet.CmdChatResp}},
		{name: "ws not json", ep: epWS, body: `not json at all`, cmds: []packet.Cmd{packet.CmdError}},
		{name: "ws truncated object", ep: epWS, body: `{"cmd":"11","to":`, cmds: []packet.Cmd{packet.CmdError, packet.CmdChatResp}},
		{name: "wss not json", ep: epWSS, body: `hello`, cmds: []packet.Cmd{packet.CmdError}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := g.login(t, tc.ep, uid("malformed"))
			if err := c.WriteFrame(packet.CmdChatReq, []byte(tc.body)); err != nil {
				t.Fatal(err)
			}
			p, err := c.Recv(wait)
			if err != nil {
				t.Fatal(err)
			}
			r, err := timclient.DecodeResponse(p)
			mustCode(t, "answer", r, err, packet.StatusInvalidBody)
			if !slices.Contains(tc.cmds, p.Cmd) || int(r.Cmd) != int(p.Cmd) {
				t.Errorf("answer %s: want cmd one of %v", p.Body, tc.cmds)
			}
			mustSync(t, c, "connection after the bad body")
		})
	}
}

// TestUnknownCmd sends a command outside the table: it is answered with the same
// command and code 10014, and the connection stays open.
func TestUnknownCmd(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			c := g.dial(t, ep)
			mustSync(t, c, "first heartbeat") // a TCP connection must start with a known cmd to be sniffed
			r, err := c.Request(99, `{"cmd":99}`, wait)
			mustCode(t, "cmd 99", r, err, packet.StatusUnsupportedCmd)
			mustSync(t, c, "connection after cmd 99")
		})
	}
}

// TestOversizedFrame declares a frame body one byte over limits.max_frame_bytes, over
// TCP and over WebSocket: the server answers with code 10026 and closes the connection.
// Only the frame header is sent: the server must judge the declared length before the
// body arrives.
func TestOversizedFrame(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	const n = defMaxFrame + 1
	tcpHeader := make([]byte, timclient.TCPHeaderLen)
	tcpHeader[0] = byte(packet.CmdChatReq)
	binary.BigEndian.PutUint32(tcpHeader[1:], n)
	// final text frame, masked, 16-bit length, masking key
	wsHeader := []byte{0x81, 0x80 | 126, byte(n >> 8), byte(n & 0xff), 1, 2, 3, 4}

	for _, tc := range []struct {
		ep     endpoint
		header []byte
	}{
		{ep: epTCP, header: tcpHeader},
		{ep: epWS, header: wsHeader},
	} {
		t.Run(string(tc.ep), func(t *testing.T) {
			t.Parallel()
			c := g.login(t, tc.ep, uid("oversized"))
			if err := c.WriteRaw(tc.header); err != nil {
				t.Fatal(err)
			}
			got, err := c.ExpectClosed(wait)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %s before the close (%v), want one answer with code 10026", timclient.Describe(got), c.Err())
			}
			var r struct {
				Code packet.Status `json:"code"`
			}
			if err := json.Unmarshal(got[0].Body, &r); err != nil || r.Code != packet.StatusTooLarge {
				t.Errorf("answer %s: want code 10026", got[0].Body)
			}
		})
	}
}
