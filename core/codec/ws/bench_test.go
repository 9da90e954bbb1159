package ws

import (
	"bytes"
	"testing"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// benchChat is a typical chat message body (about 150 bytes).
const benchChat = `{"cmd":11,"id":"m-1","from":"alice","to":"bob","chatType":2,"msgType":0,` +
	`"createTime":1700000000000,"content":"hello there, how is the weather today?"}`

func upgraded(b *testing.B) *Codec {
	c := New(codec.Options{MaxFrame: 1 << 20})
	var out codec.Decoded
	if _, err := c.Decode(upgradeReq("/"), &out); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkDecode decodes one masked chat frame per call.
func BenchmarkDecode(b *testing.B) {
	c := upgraded(b)
	frame := text(benchChat)
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
	c := upgraded(b)
	in := bytes.Repeat(text(benchChat), batch)
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

// BenchmarkDecodePing is the framing cost alone: a ping answered with a pong, no body
// copy and no JSON.
func BenchmarkDecodePing(b *testing.B) {
	c := upgraded(b)
	frame := clientFrame(0x9, true, "keepalive")
	var out codec.Decoded
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if n, err := c.Decode(frame, &out); err != nil || n != len(frame) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkPeekCmd is the share of packet.PeekCmd in BenchmarkDecode.
func BenchmarkPeekCmd(b *testing.B) {
	body := []byte(benchChat)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := packet.PeekCmd(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode frames one chat body into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	c := upgraded(b)
	p := packet.Packet{Cmd: packet.CmdChatReq, Body: []byte(benchChat)}
	dst := make([]byte, 0, 1024)
	b.SetBytes(int64(len(p.Body)))
	b.ReportAllocs()
	for b.Loop() {
		dst = c.Encode(dst[:0], p)
	}
}

// BenchmarkUpgrade is the per-connection cost of the handshake.
func BenchmarkUpgrade(b *testing.B) {
	req := upgradeReq("/?username=alice&password=secret")
	var out codec.Decoded
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		c := New(codec.Options{MaxFrame: 1 << 20})
		if _, err := c.Decode(req, &out); err != nil {
			b.Fatal(err)
		}
	}
}
