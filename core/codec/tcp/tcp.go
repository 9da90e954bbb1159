// Package tcp is the codec of t-im's binary TCP protocol: every packet is a 1-byte cmd,
// a 4-byte big-endian body length and a JSON body (docs/protocol.md section 1).
package tcp

import (
	"encoding/binary"
	"fmt"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// HeaderLen is the size of a frame header: cmd (1) + length (4).
const HeaderLen = 5

// Codec frames t-im TCP packets. It keeps no state between calls.
type Codec struct {
	maxFrame int
}

var _ codec.Codec = (*Codec)(nil)

// New returns a TCP codec that refuses bodies over opts.MaxFrame bytes.
func New(opts codec.Options) *Codec { return &Codec{maxFrame: opts.MaxFrame} }

// Decode implements codec.Codec.
func (c *Codec) Decode(in []byte, out *codec.Decoded) (int, error) {
	consumed := 0
	for len(in)-consumed >= HeaderLen {
		h := in[consumed:]
		cmd := packet.Cmd(h[0])
		n := binary.BigEndian.Uint32(h[1:HeaderLen])
		if c.maxFrame > 0 && uint64(n) > uint64(c.maxFrame) {
			return consumed, &codec.Error{Cmd: cmd.Response(), Status: packet.StatusTooLarge,
				Msg: fmt.Sprintf("frame body of %d bytes exceeds the limit of %d bytes", n, c.maxFrame)}
		}
		if uint64(len(h)) < uint64(HeaderLen)+uint64(n) {
			break
		}
		body := make([]byte, n)
		copy(body, h[HeaderLen:HeaderLen+int(n)])
		out.Packets = append(out.Packets, packet.Packet{Cmd: cmd, Body: body})
		consumed += HeaderLen + int(n)
	}
	return consumed, nil
}

// Encode implements codec.Codec.
func (c *Codec) Encode(dst []byte, p packet.Packet) []byte {
	var h [HeaderLen]byte
	h[0] = byte(p.Cmd)
	binary.BigEndian.PutUint32(h[1:], uint32(len(p.Body)))
	dst = append(dst, h[:]...)
	return append(dst, p.Body...)
}

// Frame returns the wire form of one packet; handy for clients and tests.
func Frame(cmd packet.Cmd, body []byte) []byte {
	return (&Codec{}).Encode(make([]byte, 0, HeaderLen+len(body)), packet.Packet{Cmd: cmd, Body: body})
}
