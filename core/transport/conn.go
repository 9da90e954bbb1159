package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// ErrClosed is returned by Send on a connection that is closing.
var ErrClosed = errors.New("connection closed")

// ErrSlowConsumer is returned by Send when the connection's outbound queue is full; the
// connection is then closed.
var ErrSlowConsumer = errors.New("slow consumer: outbound queue full")

// waker tells a connection's writer that output is pending. The event loop's wakes the
// loop (gnet Wake); the stream path's signals its writer goroutine.
type waker interface {
	wake()
}

type eventKind uint8

const (
	evOpen eventKind = iota
	evPacket
	evClosed
)

type event struct {
	kind   eventKind
	pkt    packet.Packet
	reason string
}

// Conn is one client connection of any protocol. The handler sees packets from it, one at
// a time and in order, and sends packets to it from any goroutine.
type Conn struct {
	id     uint64
	proto  string
	remote netip.AddrPort // inline: a *net.TCPAddr would cost an allocation per connection
	codec  codec.Codec
	srv    *Server

	// Value is the handler's per-connection state. The transport never touches it; the
	// handler reads and writes it only from its own calls for this connection, which
	// never run concurrently.
	Value any

	lastRead atomic.Int64 // coarse clock, unix seconds

	omu         sync.Mutex
	w           waker
	out         []byte
	wakePending bool
	closing     bool
	abort       bool // close without flushing (slow consumer)
	reason      string

	imu     sync.Mutex
	inbox   []event
	running bool
	done    bool // evClosed queued
}

// ID is unique among the gateway's connections for the life of the process.
func (c *Conn) ID() uint64 { return c.id }

// Protocol names the wire protocol: tcp, ws, tls+tcp, wss.
func (c *Conn) Protocol() string { return c.proto }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() string {
	if !c.remote.IsValid() {
		return ""
	}
	return c.remote.String()
}

// Send queues p to the connection. It never blocks: when more than the configured
// outbound limit is waiting, the connection is closed as a slow consumer.
func (c *Conn) Send(p packet.Packet) error {
	return c.enqueue(&p, nil)
}

// enqueue appends p, encoded, or else raw to the outbound buffer under the queue limit
// and wakes the writer.
func (c *Conn) enqueue(p *packet.Packet, raw []byte) error {
	size := len(raw)
	if p != nil {
		size = len(p.Body)
	}
	c.omu.Lock()
	if c.closing {
		c.omu.Unlock()
		return ErrClosed
	}
	if len(c.out)+size+16 > c.srv.limits().OutboundQueueBytes {
		queued := len(c.out)
		c.closing, c.abort = true, true
		c.reason = fmt.Sprintf("slow consumer: %d bytes queued, limit %d", queued, c.srv.limits().OutboundQueueBytes)
		c.out = nil
		w := c.w
		c.omu.Unlock()
		if w != nil {
			w.wake()
		}
		return ErrSlowConsumer
	}
	if p != nil {
		c.srv.stats.PacketsOut.Add(1)
		out := c.out
		if out == nil {
			out = getBuf()
		}
		n := len(out)
		if out = c.codec.Encode(out, *p); len(out) == n {
			// An asynchronous codec took the packet; its bytes come through WriteRaw,
			// which wakes the writer then.
			if c.out == nil {
				putBuf(out)
			}
			c.omu.Unlock()
			return nil
		}
		c.out = out
	} else {
		if c.out == nil {
			c.out = getBuf()
		}
		c.out = append(c.out, raw...)
	}
	wake := !c.wakePending && c.w != nil
	c.wakePending = true
	w := c.w
	c.omu.Unlock()
	if wake {
		w.wake()
	}
	return nil
}

var _ codec.Sink = (*Conn)(nil)

// Inject implements codec.Sink: an asynchronous codec's decoded packets.
func (c *Conn) Inject(pkts ...packet.Packet) {
	if len(pkts) == 0 {
		return
	}
	c.lastRead.Store(c.srv.clock.Load())
	c.srv.stats.PacketsIn.Add(uint64(len(pkts)))
	evs := make([]event, len(pkts))
	for i, p := range pkts {
		evs[i] = event{kind: evPacket, pkt: p}
	}
	c.push(evs...)
}

// WriteRaw implements codec.Sink: bytes an asynchronous codec encoded.
func (c *Conn) WriteRaw(b []byte) error {
	return c.enqueue(nil, b)
}

// reply queues a codec's own answer (upgrade response, pong) behind what is already
// queued, ignoring the queue limit and a pending close: the codec must get it out.
func (c *Conn) reply(b []byte) {
	c.omu.Lock()
	c.out = append(c.out, b...)
	c.omu.Unlock()
}

// Close flushes what is queued, says goodbye where the protocol has a way to, and closes
// the connection. reason is logged and handed to the handler's Closed.
func (c *Conn) Close(reason string) {
	c.omu.Lock()
	if c.closing {
		c.omu.Unlock()
		return
	}
	c.closing = true
	c.reason = reason
	if g, ok := c.codec.(codec.Goodbyer); ok {
		c.out = g.Goodbye(c.out, reason)
	}
	w := c.w
	c.wakePending = true
	c.omu.Unlock()
	if w != nil {
		w.wake()
	}
}

// setWaker attaches the writer once the connection is registered, and reports whether
// output is already waiting.
func (c *Conn) setWaker(w waker) (pending bool) {
	c.omu.Lock()
	c.w = w
	pending = len(c.out) > 0 || c.closing
	c.wakePending = pending
	c.omu.Unlock()
	return pending
}

// takeOut hands the writer everything queued. closing tells it to close after writing;
// abort, to close without writing.
func (c *Conn) takeOut() (buf []byte, closing, abort bool) {
	c.omu.Lock()
	buf = c.out
	c.out = nil
	c.wakePending = false
	closing, abort = c.closing, c.abort
	c.omu.Unlock()
	if abort {
		buf = nil
	}
	c.srv.stats.BytesOut.Add(uint64(len(buf)))
	return buf, closing, abort
}

// giveBack returns a written buffer to the shared pool: an idle connection keeps no
// output buffer (memory per idle connection matters more than one pool round trip).
func (c *Conn) giveBack(buf []byte) { putBuf(buf) }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) == 0 || cap(b) > 64<<10 {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}

// closeReason returns the reason recorded by Close, if any.
func (c *Conn) closeReason() string {
	c.omu.Lock()
	defer c.omu.Unlock()
	return c.reason
}

// markClosing records that the peer or the network ended the connection.
func (c *Conn) markClosing(reason string) string {
	c.omu.Lock()
	defer c.omu.Unlock()
	if !c.closing {
		c.closing = true
		c.reason = reason
	}
	c.w = nil
	return c.reason
}

// maxInbox bounds the packets decoded but not yet handled for one connection.
const maxInbox = 8192

// push queues events for the handler and makes sure a worker drains them.
func (c *Conn) push(evs ...event) {
	c.imu.Lock()
	if c.done {
		c.imu.Unlock()
		return
	}
	if len(c.inbox)+len(evs) > maxInbox && evs[0].kind == evPacket {
		c.imu.Unlock()
		c.Close(fmt.Sprintf("inbound queue overflow: more than %d packets waiting", maxInbox))
		return
	}
	for _, e := range evs {
		if e.kind == evClosed {
			c.done = true
		}
	}
	c.inbox = append(c.inbox, evs...)
	start := !c.running
	c.running = true
	c.imu.Unlock()
	if start {
		c.srv.submit(c.drain)
	}
}

// drain runs on a pool worker: it hands queued events to the handler in order.
func (c *Conn) drain() {
	var batch []event
	for {
		c.imu.Lock()
		if len(c.inbox) == 0 {
			c.running = false
			if cap(c.inbox) > 256 {
				c.inbox = nil
			}
			c.imu.Unlock()
			return
		}
		batch, c.inbox = c.inbox, batch[:0]
		c.imu.Unlock()
		for i := range batch {
			e := &batch[i]
			switch e.kind {
			case evOpen:
				c.srv.handler.Opened(c)
			case evPacket:
				c.srv.handler.Packet(c, e.pkt)
			case evClosed:
				c.srv.handler.Closed(c, e.reason)
			}
			*e = event{}
		}
	}
}
