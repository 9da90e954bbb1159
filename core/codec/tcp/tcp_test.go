package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

const chat = `{"from":"alice","to":"bob","cmd":11,"chatType":2,"msgType":0,"content":"hi"}`

func pk(cmd packet.Cmd, body string) packet.Packet {
	return packet.Packet{Cmd: cmd, Body: []byte(body)}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// header is a frame header that declares n body bytes, without them.
func header(cmd packet.Cmd, n uint32) []byte {
	h := []byte{byte(cmd), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

// result is everything a connection's Decode calls produced.
type result struct {
	packets []packet.Packet
	err     error
	rest    int // bytes left unconsumed at the end
}

// feed plays the transport: it delivers stream in chunks of chunk bytes (all of it when
// chunk <= 0), calls Decode with all unconsumed bytes after each, and checks the contract
// invariants on every call.
func feed(t testing.TB, c *Codec, stream []byte, chunk int) result {
	t.Helper()
	if chunk <= 0 || chunk > len(stream) {
		chunk = max(len(stream), 1)
	}
	var (
		r   result
		buf []byte
		out codec.Decoded
	)
	for i := 0; i < len(stream); i += chunk {
		buf = append(buf, stream[i:min(i+chunk, len(stream))]...)
		out.Reset()
		n, err := c.Decode(buf, &out)
		if n < 0 || n > len(buf) {
			t.Fatalf("Decode consumed %d of %d bytes", n, len(buf))
		}
		if len(out.Reply) != 0 || out.Close {
			t.Fatalf("the TCP codec never replies nor closes by itself")
		}
		for _, p := range out.Packets {
			if overlaps(p.Body, buf) {
				t.Fatalf("packet body %q aliases the input", p.Body)
			}
		}
		r.packets = append(r.packets, out.Packets...)
		// Scribble over the consumed bytes, as the transport reuses its buffer.
		for j := range buf[:n] {
			buf[j] = 0xee
		}
		buf = buf[n:]
		if err != nil {
			r.err = err
			break
		}
	}
	r.rest = len(buf)
	return r
}

// overlaps reports whether a and b share memory.
func overlaps(a, b []byte) bool {
	if cap(a) == 0 || cap(b) == 0 {
		return false
	}
	a0 := uintptr(unsafe.Pointer(unsafe.SliceData(a[:cap(a)])))
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b[:cap(b)])))
	return a0 < b0+uintptr(cap(b)) && b0 < a0+uintptr(cap(a))
}

func samePackets(a, b []packet.Packet) bool {
	return slices.EqualFunc(a, b, func(x, y packet.Packet) bool {
		return x.Cmd == y.Cmd && bytes.Equal(x.Body, y.Body)
	})
}

// TestDecode runs every case three ways: the whole stream in one buffer, byte by byte,
// and in 3-byte chunks. All three must give the same packets and outcome.
func TestDecode(t *testing.T) {
	tests := []struct {
		name        string
		maxFrame    int
		stream      []byte
		wantPackets []packet.Packet
		// wantRest is how many bytes stay buffered (a partial frame) at the end.
		wantRest int
		// wantErr is the *codec.Error expected, nil for none.
		wantErr *codec.Error
	}{
		{
			name:        "one frame",
			maxFrame:    1024,
			stream:      Frame(packet.CmdChatReq, []byte(chat)),
			wantPackets: []packet.Packet{pk(11, chat)},
		},
		{
			name:     "several frames merged",
			maxFrame: 1024,
			stream: cat(
				Frame(packet.CmdHandshakeReq, []byte(`{"hbyte":1}`)),
				Frame(packet.CmdLoginReq, []byte(`{"userId":"a","password":"p"}`)),
				Frame(packet.CmdChatReq, []byte(chat)),
				Frame(packet.CmdHeartbeatReq, []byte(`{"hbbyte":1}`))),
			wantPackets: []packet.Packet{
				pk(1, `{"hbyte":1}`),
				pk(5, `{"userId":"a","password":"p"}`),
				pk(11, chat),
				pk(13, `{"hbbyte":1}`),
			},
		},
		{
			name:        "empty body",
			maxFrame:    1024,
			stream:      Frame(packet.CmdHeartbeatReq, nil),
			wantPackets: []packet.Packet{pk(13, "")},
		},
		{
			name:        "body of exactly the limit",
			maxFrame:    16,
			stream:      Frame(packet.CmdChatReq, []byte(`{"content":"xx"}`)),
			wantPackets: []packet.Packet{pk(11, `{"content":"xx"}`)},
		},
		{
			name:        "partial frame stays buffered",
			maxFrame:    1024,
			stream:      cat(Frame(packet.CmdChatReq, []byte(chat)), Frame(packet.CmdChatReq, []byte(chat))[:20]),
			wantPackets: []packet.Packet{pk(11, chat)},
			wantRest:    20,
		},
		{
			name:     "partial header stays buffered",
			maxFrame: 1024,
			stream:   []byte{11, 0, 0},
			wantRest: 3,
		},
		{
			name:        "unknown cmd is passed on for the core to answer",
			maxFrame:    1024,
			stream:      Frame(200, []byte(`{}`)),
			wantPackets: []packet.Packet{pk(200, `{}`)},
		},
		{
			name:        "body is not checked here",
			maxFrame:    1024,
			stream:      Frame(packet.CmdChatReq, []byte("not json")),
			wantPackets: []packet.Packet{pk(11, "not json")},
		},
		{
			name:        "oversize frame is refused from its header",
			maxFrame:    16,
			stream:      cat(Frame(13, []byte(`{}`)), header(packet.CmdChatReq, 17)),
			wantPackets: []packet.Packet{pk(13, `{}`)},
			wantErr: &codec.Error{Cmd: packet.CmdChatResp, Status: packet.StatusTooLarge,
				Msg: "frame body of 17 bytes exceeds the limit of 16 bytes"},
		},
		{
			name:     "huge declared length",
			maxFrame: 1 << 20,
			stream:   header(packet.CmdLoginReq, 0xffffffff),
			wantErr: &codec.Error{Cmd: packet.CmdLoginResp, Status: packet.StatusTooLarge,
				Msg: "frame body of 4294967295 bytes exceeds the limit of 1048576 bytes"},
		},
		{
			name:     "no limit",
			maxFrame: 0,
			stream:   Frame(packet.CmdChatReq, []byte(strings.Repeat("z", 5000))),
			wantPackets: []packet.Packet{
				pk(11, strings.Repeat("z", 5000)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 3} {
				r := feed(t, New(codec.Options{MaxFrame: tt.maxFrame}), tt.stream, chunk)
				if !samePackets(r.packets, tt.wantPackets) {
					t.Errorf("chunk %d: packets %q, want %q", chunk, r.packets, tt.wantPackets)
				}
				var ce *codec.Error
				switch {
				case tt.wantErr == nil && r.err != nil:
					t.Errorf("chunk %d: unexpected error %v", chunk, r.err)
				case tt.wantErr != nil && !errors.As(r.err, &ce):
					t.Errorf("chunk %d: error %v, want %v", chunk, r.err, tt.wantErr)
				case tt.wantErr != nil && *ce != *tt.wantErr:
					t.Errorf("chunk %d: error %+v, want %+v", chunk, *ce, *tt.wantErr)
				}
				if tt.wantErr == nil && r.rest != tt.wantRest {
					t.Errorf("chunk %d: %d bytes left, want %d", chunk, r.rest, tt.wantRest)
				}
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	c := New(codec.Options{MaxFrame: 1 << 20})
	for _, p := range []packet.Packet{
		pk(packet.CmdChatReq, chat),
		pk(packet.CmdHeartbeatReq, ""),
		pk(packet.CmdGetMessageResp, `{"data":"`+strings.Repeat("m", 70000)+`"}`),
		pk(255, `{}`),
	} {
		wire := c.Encode([]byte("prefix"), p)
		if !bytes.HasPrefix(wire, []byte("prefix")) {
			t.Fatal("dst not kept")
		}
		wire = wire[len("prefix"):]
		if len(wire) != HeaderLen+len(p.Body) || wire[0] != byte(p.Cmd) ||
			binary.BigEndian.Uint32(wire[1:HeaderLen]) != uint32(len(p.Body)) {
			t.Fatalf("bad frame header % x", wire[:HeaderLen])
		}
		if !bytes.Equal(wire, Frame(p.Cmd, p.Body)) {
			t.Error("Encode and Frame differ")
		}
		var out codec.Decoded
		n, err := c.Decode(wire, &out)
		if err != nil || n != len(wire) || !samePackets(out.Packets, []packet.Packet{p}) {
			t.Fatalf("Decode = %d, %v, %d packets", n, err, len(out.Packets))
		}
	}
}
