// Package codectest helps test codec plugins without a host: Conn records what a
// plugin emits, writes and closes.
package codectest

import (
	"bytes"
	"sync"

	"github.com/timgw/timgw/plugins/codec"
)

// Conn is a codec.Conn that records the plugin's calls. Safe for concurrent use.
type Conn struct {
	Id      uint64
	Remote  string
	Proto   string
	mu      sync.Mutex
	emitted []codec.Packet
	written bytes.Buffer
	closed  bool
	reason  string
}

var _ codec.Conn = (*Conn)(nil)

// ID implements codec.Conn.
func (c *Conn) ID() uint64 { return c.Id }

// RemoteAddr implements codec.Conn.
func (c *Conn) RemoteAddr() string { return c.Remote }

// Transport implements codec.Conn.
func (c *Conn) Transport() string { return c.Proto }

// Emit implements codec.Conn.
func (c *Conn) Emit(p codec.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emitted = append(c.emitted, codec.Packet{Cmd: p.Cmd, Body: bytes.Clone(p.Body)})
}

// Write implements codec.Conn.
func (c *Conn) Write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written.Write(b)
}

// Close implements codec.Conn.
func (c *Conn) Close(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed, c.reason = true, reason
	}
}

// TakeEmitted returns the packets emitted since the last call.
func (c *Conn) TakeEmitted() []codec.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.emitted
	c.emitted = nil
	return p
}

// TakeWritten returns the bytes written since the last call.
func (c *Conn) TakeWritten() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := bytes.Clone(c.written.Bytes())
	c.written.Reset()
	return b
}

// Closed reports whether the plugin closed the connection, and why.
func (c *Conn) Closed() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed, c.reason
}
