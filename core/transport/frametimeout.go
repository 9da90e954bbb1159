package transport

import (
	"fmt"
	"time"

	"github.com/timgw/timgw/core/codec/ws"
	"github.com/timgw/timgw/core/packet"
)

// Frame-completion timeout (limits.frame_timeout): a frame whose first bytes arrived
// must be complete within the timeout, or the connection is closed with code 10037. A
// client trickling a valid frame a byte at a time would otherwise hold its buffer
// forever: each byte resets the idle timeout.
//
// It costs no goroutine or timer per connection: the reader (the event loop, or a TLS
// connection's reader goroutine) stamps Conn.frame when bytes of an incomplete frame
// stay buffered after decoding and clears it when the buffer empties, and the reaper's
// once-a-second sweep (Server.reap) closes connections whose stamp is too old. The
// stamp is one byte, the coarse clock's seconds modulo 255 plus one, so that Conn
// stays in its size class; timeouts are therefore bounded by maxFrameTimeout.

// partialCodec is a codec that holds part of a message itself, between whole frames
// (a WebSocket message arriving in fragments): the message counts as an incomplete
// frame until it completes.
type partialCodec interface {
	Partial() bool
}

var _ partialCodec = (*ws.Codec)(nil)

// incomplete reports whether, after a decode, part of a frame or message is held:
// buffered bytes (buffered > 0) or a message the codec is assembling.
func (c *Conn) incomplete(buffered int) bool {
	if buffered > 0 {
		return true
	}
	p, ok := c.codec.(partialCodec)
	return ok && p.Partial()
}

// maxFrameTimeout is the longest frame timeout the one-byte stamp can measure.
const maxFrameTimeout = 200 * time.Second

// frameStamp is the stamp of unix second sec: 1 to 255.
func frameStamp(sec int64) uint8 { return uint8(sec%255) + 1 }

// frameAge is how many seconds passed from stamp then to stamp now (modulo 255).
func frameAge(now, then uint8) int64 { return (int64(now) - int64(then) + 255) % 255 }

// trackFrame records, after a decode, whether part of a frame or message is held
// (incomplete); progressed says the decode completed packets, so that what remains is
// a frame begun now (a client streaming frames back to back may never leave the
// buffer empty). Only the connection's reader calls it, so it may read c.frame without
// the lock; it writes under the lock, which the reaper reads under, at most once a
// second while frames keep completing.
func (c *Conn) trackFrame(partial, progressed bool) {
	switch {
	case partial && (c.frame == 0 || progressed):
		if now := frameStamp(c.srv.clock.Load()); now != c.frame {
			c.mu.Lock()
			c.frame = now
			c.mu.Unlock()
		}
	case !partial && c.frame != 0:
		c.mu.Lock()
		c.frame = 0
		c.mu.Unlock()
	}
}

// frameOverdue reports whether c has had an incomplete frame for longer than timeout
// at stamp now.
func (c *Conn) frameOverdue(now uint8, timeout time.Duration) bool {
	c.mu.Lock()
	f := c.frame
	c.mu.Unlock()
	return f != 0 && frameAge(now, f) > int64(timeout/time.Second)
}

// frameTimedOut tells the peer (cmd 0, code 10037, where the protocol can carry it) and
// closes the connection.
func (c *Conn) frameTimedOut(timeout time.Duration) {
	msg := fmt.Sprintf("frame incomplete after %s (limits.frame_timeout): connection closed", timeout)
	_ = c.Send(packet.ErrorPacket(packet.CmdError, packet.StatusFrameTimeout, msg))
	c.srv.log.Info("connection closed: frame timeout", "conn", c.id, "proto", c.Protocol(),
		"remote", c.RemoteAddr(), "code", int(packet.StatusFrameTimeout), "timeout", timeout)
	c.Close(fmt.Sprintf("frame timeout (%d): a frame incomplete after %s", packet.StatusFrameTimeout, timeout))
}
