package tcp

import (
	"bytes"
	"testing"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// benchChat is a typical chat message body (about 150 bytes).
const benchChat = `{"cmd":11,"id":"m-1","from":"alice","to":"bob","chatType":2,"msgType":0,` +
	`"createTime":1700000000000,"content":"hello there, how is the weather today?"}`

// BenchmarkDecode decodes one chat frame per call.
func BenchmarkDecode(b *testing.B) {
	c := New(codec.Options{MaxFrame: 1 << 20})
	frame := Frame(packet.CmdChatReq, []byte(benchChat))
	var out codec.Decoded
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if n, err := c.Decode(frame, &out); err != nil || n != len(frame) || len(out.Packets) != 1 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkDecodeBatch decodes 32 frames merged in one buffer per call; ns/op is per
// frame.
func BenchmarkDecodeBatch(b *testing.B) {
	const batch = 32
	c := New(codec.Options{MaxFrame: 1 << 20})
	in := bytes.Repeat(Frame(packet.CmdChatReq, []byte(benchChat)), batch)
	var out codec.Decoded
	b.SetBytes(int64(len(in) / batch))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%batch != 0 {
			continue
		}
		out.Reset()
		if n, err := c.Decode(in, &out); err != nil || n != len(in) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkEncode frames one chat body into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	c := New(codec.Options{MaxFrame: 1 << 20})
	p := packet.Packet{Cmd: packet.CmdChatReq, Body: []byte(benchChat)}
	dst := make([]byte, 0, 1024)
	b.SetBytes(int64(len(p.Body)))
	b.ReportAllocs()
	for b.Loop() {
		dst = c.Encode(dst[:0], p)
	}
}
