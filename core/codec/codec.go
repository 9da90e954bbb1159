// Package codec defines how timgw turns one connection's bytes into packets and packets
// back into bytes. Each wire protocol (the t-im TCP framing, WebSocket, and protocols
// shipped as plugins) implements Codec; the transport and the rest of the core see only
// packets.
package codec

import (
	"fmt"

	"github.com/timgw/timgw/core/packet"
)

// Codec frames the byte stream of one connection. There is one instance per connection,
// and the transport calls it from one goroutine at a time, so it may keep state
// (a WebSocket codec remembers whether the upgrade is done).
type Codec interface {
	// Decode reads the whole frames at the front of in and appends what they carry to
	// out. It returns how many bytes of in it consumed; the rest stays buffered for the
	// next call. Packet bodies in out never alias in, nor each other, and the codec
	// never writes to them afterwards: the handler owns them (a chat's strings may point
	// into its body, packet.DecodeChatOwned). A non-nil error ends the connection: when
	// it is an *Error the transport first answers with it.
	Decode(in []byte, out *Decoded) (consumed int, err error)
	// Encode appends the wire form of p to dst and returns the extended slice.
	Encode(dst []byte, p packet.Packet) []byte
}

// Goodbyer is implemented by codecs whose protocol has a closing frame (WebSocket's
// close). The transport appends it as the last bytes it writes to a connection it closes.
type Goodbyer interface {
	Goodbye(dst []byte, reason string) []byte
}

// Decoded is what one Decode call found. The transport resets it between calls.
type Decoded struct {
	// Packets are the packets of the consumed frames, in order.
	Packets []packet.Packet
	// Reply holds bytes the codec itself answers with (a WebSocket upgrade response, a
	// pong, an error for an unreadable frame), to be written before any packet
	// produced afterwards.
	Reply []byte
	// Close is set when the peer asked to close (a WebSocket close frame): the transport
	// writes Reply and closes the connection.
	Close bool
}

// Reset empties d for reuse, keeping its storage.
func (d *Decoded) Reset() {
	d.Packets = d.Packets[:0]
	d.Reply = d.Reply[:0]
	d.Close = false
}

// Options are the limits a codec enforces.
type Options struct {
	// MaxFrame is the largest frame body accepted, in bytes. A larger frame is a
	// protocol error (*Error with packet.StatusTooLarge).
	MaxFrame int
}

// Error is a protocol error: the transport answers it with a packet of command Cmd
// (packet.CmdError when it belongs to no request) and closes the connection.
type Error struct {
	Cmd    packet.Cmd
	Status packet.Status
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("protocol error %d: %s", e.Status, e.Msg) }

// Packet returns the response packet that reports e to the peer.
func (e *Error) Packet() packet.Packet { return packet.ErrorPacket(e.Cmd, e.Status, e.Msg) }

// Sink is the connection side that an asynchronous codec talks to: a codec whose work
// happens elsewhere (a plugin subprocess) hands packets and bytes back through it when
// they are ready, instead of returning them from Decode and Encode. Safe for concurrent
// use.
type Sink interface {
	// Inject queues decoded packets for the handler, in order, as Decode would have.
	Inject(pkts ...packet.Packet)
	// WriteRaw queues encoded bytes to the peer, as Encode would have.
	WriteRaw(b []byte) error
	// Close closes the connection, logging reason.
	Close(reason string)
}

// Attacher is implemented by asynchronous codecs: the transport calls Attach once, before
// the first Decode, with the connection the codec serves.
type Attacher interface {
	Attach(s Sink)
}

// Detacher is implemented by codecs that hold resources per connection: the transport
// calls Detach once when the connection is gone.
type Detacher interface {
	Detach()
}

// Drainer is implemented by asynchronous codecs, whose decoded packets may still be on
// their way (in a plugin) when the connection ends: a client that sends a message and
// closes at once. Instead of Detach, the transport calls Drain once when the connection
// is gone, and reports the close to the handler only when the codec calls done; the
// packets the codec injects before that still reach the handler, in order. The codec
// must call done exactly once, and soon (it bounds the wait itself).
type Drainer interface {
	Drain(done func())
}

// Match is a protocol recogniser's verdict on a connection's first bytes.
type Match int

// Verdicts.
const (
	NoMatch  Match = iota // not this protocol
	NeedMore              // cannot tell yet: wait for more bytes
	Matched               // this protocol
)

// Protocol is a wire protocol beyond the built-in ones (t-im TCP, WebSocket, HTTP): the
// shared port consults every configured Protocol, in order, after the built-ins.
type Protocol interface {
	// Name names the protocol, as connections report it (e.g. "mqtt").
	Name() string
	// Recognize looks at a connection's first bytes.
	Recognize(first []byte) Match
	// NewCodec returns the codec of one new connection.
	NewCodec(opts Options) Codec
}
