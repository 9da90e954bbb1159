package tcp

import (
	"bytes"
	"testing"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// fuzzMaxFrame keeps fuzzed frames small, so that declared lengths are refused early.
const fuzzMaxFrame = 4096

// FuzzDecode feeds arbitrary bytes to the codec, whole and in chunks. It checks that
// Decode never panics, consumes within bounds, produces bodies that do not alias its
// input and respect the limit, and that byte-by-byte feeding gives the same packets and
// error as whole-buffer feeding. Packets re-encoded give back the consumed bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range [][]byte{
		Frame(packet.CmdChatReq, []byte(chat)),
		cat(Frame(packet.CmdHandshakeReq, []byte(`{"hbyte":1}`)), Frame(packet.CmdLoginReq, []byte(`{"userId":"a"}`))),
		Frame(packet.CmdHeartbeatReq, nil),
		Frame(packet.CmdChatReq, []byte(chat))[:9],
		header(packet.CmdChatReq, fuzzMaxFrame+1),
		header(packet.CmdChatReq, 0xffffffff),
		{11, 0, 0},
		{},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole := feed(t, New(codec.Options{MaxFrame: fuzzMaxFrame}), data, 0)
		bytewise := feed(t, New(codec.Options{MaxFrame: fuzzMaxFrame}), data, 1)
		chunked := feed(t, New(codec.Options{MaxFrame: fuzzMaxFrame}), data, int(chunk)+1)

		var enc []byte
		c := New(codec.Options{})
		for _, p := range whole.packets {
			if len(p.Body) > fuzzMaxFrame {
				t.Fatalf("body of %d bytes passed the limit", len(p.Body))
			}
			enc = c.Encode(enc, p)
		}
		if !bytes.HasPrefix(data, enc) {
			t.Fatalf("re-encoded packets are not the consumed input")
		}
		if whole.err == nil && len(enc)+whole.rest != len(data) {
			t.Fatalf("consumed %d + rest %d != %d bytes", len(enc), whole.rest, len(data))
		}
		for _, r := range []result{bytewise, chunked} {
			if !samePackets(whole.packets, r.packets) {
				t.Fatalf("chunked packets %q differ from whole %q", r.packets, whole.packets)
			}
			if (whole.err == nil) != (r.err == nil) ||
				(whole.err != nil && whole.err.Error() != r.err.Error()) {
				t.Fatalf("error: whole %v, chunked %v", whole.err, r.err)
			}
			if whole.err == nil && whole.rest != r.rest {
				t.Fatalf("rest: whole %d, chunked %d", whole.rest, r.rest)
			}
		}
	})
}
