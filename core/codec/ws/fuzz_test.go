package ws

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// fuzzMaxFrame keeps fuzzed frames small, so that declared lengths are refused early.
const fuzzMaxFrame = 4096

// FuzzDecode feeds arbitrary bytes to a codec, either after a valid upgrade request
// (raw false: the frame reader is fuzzed) or as the whole connection (raw true: the
// upgrade is fuzzed too). It checks that Decode never panics, consumes within bounds,
// produces bodies that do not alias its input and carry the cmd they are tagged with,
// writes well-formed server frames, and gives the same result fed whole and in chunks.
func FuzzDecode(f *testing.F) {
	frameSeeds := [][]byte{
		text(chat),
		text(`{"cmd":"11","chatType":"1","content":"x"}`),
		cat(text(`{"cmd":5,"userId":"a"}`), text(`{"cmd":13}`)),
		clientFrame(ws.OpBinary, true, `{"cmd":13,"hbbyte":1}`),
		cat(clientFrame(ws.OpText, false, `{"cmd":`), clientFrame(ws.OpPing, true, "p"),
			clientFrame(ws.OpContinuation, true, `11}`)),
		clientFrame(ws.OpPing, true, "ping"),
		clientFrame(ws.OpPong, true, ""),
		clientFrame(ws.OpClose, true, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))),
		clientFrame(ws.OpClose, true, "x"),
		text(`not json`),
		text(`{"nocmd":1}`),
		text(`{"cmd":1e400}`),
		text(`{"content":"` + strings.Repeat("x", 300) + `","cmd":11}`),
		unmaskedFrame(ws.OpText, chat),
		clientFrame(ws.OpContinuation, true, "{}"),
		rawFrame(ws.Header{Fin: true, OpCode: ws.OpText, Rsv: 4}, chat),
		rawFrame(ws.Header{Fin: true, OpCode: 0xb}, ""),
		headerOnly(ws.OpText, true, fuzzMaxFrame+1),
		headerOnly(ws.OpText, true, 1<<62),
		{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		{0x81},
		{},
	}
	for _, s := range frameSeeds {
		f.Add(s, false, uint8(0))
		f.Add(s, false, uint8(2))
	}
	for _, s := range [][]byte{
		cat(upgradeReq("/?username=alice&password=x"), text(chat)),
		upgradeReq("/?token=t&userid=7"),
		upgradeReq("ws://h/?username=%zz"),
		[]byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
		[]byte("POST / HTTP/1.1\r\n\r\n"),
		[]byte("GET / HTTP/1.1\r\nX: " + strings.Repeat("y", MaxHeaderBytes) + "\r\n\r\n"),
		[]byte("\x05\x00\x00\x00\x02{}"),
		[]byte("\r\n\r\n"),
	} {
		f.Add(s, true, uint8(0))
		f.Add(s, true, uint8(5))
	}

	f.Fuzz(func(t *testing.T, data []byte, raw bool, chunk uint8) {
		stream := data
		if !raw {
			stream = cat(upgradeReq("/?username=u"), data)
		}
		whole := feed(t, New(codec.Options{MaxFrame: fuzzMaxFrame}), stream, 0)
		split := feed(t, New(codec.Options{MaxFrame: fuzzMaxFrame}), stream, int(chunk%16)+1)

		for _, p := range whole.packets {
			if len(p.Body) > fuzzMaxFrame && p.Cmd != packet.CmdLoginReq {
				t.Fatalf("body of %d bytes passed the limit", len(p.Body))
			}
			cmd, err := packet.PeekCmd(p.Body)
			if err != nil || cmd != p.Cmd {
				t.Fatalf("packet %d %q: PeekCmd = %d, %v", p.Cmd, p.Body, cmd, err)
			}
		}
		// Whatever follows an HTTP 101 must be well-formed server frames.
		splitReply(t, whole.reply)

		if !samePackets(whole.packets, split.packets) {
			t.Fatalf("chunked packets differ:\n%s\nwhole:\n%s", fmtPackets(split.packets), fmtPackets(whole.packets))
		}
		if !bytes.Equal(whole.reply, split.reply) {
			t.Fatalf("chunked reply differs:\n%q\nwhole:\n%q", split.reply, whole.reply)
		}
		if whole.close != split.close {
			t.Fatalf("close: whole %v, chunked %v", whole.close, split.close)
		}
		if (whole.err == nil) != (split.err == nil) ||
			(whole.err != nil && whole.err.Error() != split.err.Error()) {
			t.Fatalf("error: whole %v, chunked %v", whole.err, split.err)
		}
	})
}
