package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/timgw/timgw/core/codec"
)

func numCPU() int { return runtime.NumCPU() }

// loop is the gnet event engine that plain TCP and WebSocket connections live in after
// sniffing. Its own listener (loopback, random port) accepts nothing: connections arrive
// through Register.
type loop struct {
	gnet.BuiltinEventEngine
	srv      *Server
	eng      gnet.Engine
	addr     string
	booted   chan struct{}
	bootOnce sync.Once
	stopped  chan error
	decoded  sync.Pool

	flushers   atomic.Pointer[[]*flusher] // one per event loop (flush.go)
	flushersMu sync.Mutex
	batches    atomic.Int32 // batches of packets the handler is at (flush.go)
}

var _ gnet.EventHandler = (*loop)(nil)

func startLoop(s *Server, loops int) (*loop, error) {
	if loops <= 0 {
		loops = numCPU()
	}
	// Reserve a loopback port for the engine's obligatory listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("event loop: reserve port: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	l := &loop{srv: s, addr: "tcp://" + addr, booted: make(chan struct{}), stopped: make(chan error, 1)}
	l.decoded.New = func() any { return new(codec.Decoded) }
	go func() {
		l.stopped <- gnet.Run(l, l.addr,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(loops),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithTicker(true),
			gnet.WithReusePort(false),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReadBufferCap(16<<10),
			gnet.WithWriteBufferCap(16<<10),
			gnet.WithLogger(newLibLogger(s.log, "gnet")), // gnet's own lines in the configured format
		)
	}()
	select {
	case <-l.booted:
		return l, nil
	case err := <-l.stopped:
		return nil, fmt.Errorf("event loop: %w", err)
	}
}

// OnBoot implements gnet.EventHandler. gnet calls it before it registers its event
// loops, so readiness waits for the first OnTick instead.
func (l *loop) OnBoot(eng gnet.Engine) gnet.Action {
	l.eng = eng
	return gnet.None
}

// OnTick implements gnet.EventHandler. The ticker goroutine starts after every event
// loop is registered: its first tick is the moment Register becomes safe to call.
func (l *loop) OnTick() (time.Duration, gnet.Action) {
	l.bootOnce.Do(func() { close(l.booted) })
	return time.Hour, gnet.None
}

// register moves a sniffed connection into the event loop and waits until it is there.
// The loop takes a duplicate of the socket; nc is closed.
func (l *loop) register(c *Conn, nc net.Conn) error {
	ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), c), nc)
	res, err := l.eng.Register(ctx)
	if err != nil {
		return fmt.Errorf("register connection: %w", err)
	}
	// Wait here, on the connection's dispatch goroutine, rather than on a goroutine of
	// its own: registering takes one event loop turn.
	if r := <-res; r.Err != nil {
		l.srv.log.Warn("register connection failed", "conn", c.id, "err", r.Err)
		c.markClosing("register failed")
		l.srv.finished(c, fmt.Sprintf("register failed: %v", r.Err))
	}
	return nil
}

// OnOpen implements gnet.EventHandler.
func (l *loop) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c, ok := gc.Context().(*Conn)
	if !ok {
		return nil, gnet.Close // a stray dial of the engine's own port
	}
	if c.setWaker(gc) {
		_ = gc.Wake(nil)
	}
	return nil, gnet.None
}

// OnTraffic implements gnet.EventHandler: it decodes what arrived, queues the packets for
// the handler and writes what is queued to the connection (coalesced: one write for all
// the packets queued since the last wake).
func (l *loop) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok {
		return gnet.Close
	}
	if n := gc.InboundBuffered(); n > 0 {
		in, _ := gc.Peek(n)
		c.lastRead.Store(uint32(l.srv.clock.Load()))
		l.srv.stats.BytesIn.Add(uint64(n))
		d := l.decoded.Get().(*codec.Decoded)
		consumed, err := c.codec.Decode(in, d)
		if consumed > 0 { // gnet's Discard(0) would drop the whole buffer
			_, _ = gc.Discard(consumed)
		}
		c.trackFrame(c.incomplete(gc.InboundBuffered()), len(d.Packets) > 0)
		if len(d.Reply) > 0 {
			c.reply(d.Reply)
		}
		c.deliverDecoded(d)
		closeNow := d.Close
		d.Reset()
		l.decoded.Put(d)
		if err != nil {
			c.protocolError(err, func(b []byte) { _, _ = gc.Write(b) })
			return gnet.Close
		}
		if closeNow {
			c.markClosing("peer closed the WebSocket")
			return gnet.Close
		}
	}
	return l.flushOut(c, gc)
}

// flushOut writes what is queued to c (one write for all of it), on gc's event loop, and
// says whether gc is to be closed.
func (l *loop) flushOut(c *Conn, gc gnet.Conn) gnet.Action {
	buf, closing, abort := c.takeOut()
	if abort {
		l.srv.log.Warn("connection dropped", "conn", c.id, "proto", c.Protocol(), "remote", c.RemoteAddr(), "reason", c.closeReason())
		return gnet.Close
	}
	if buf != nil {
		if len(*buf) > 0 {
			_, _ = gc.Write(*buf)
		}
		c.giveBack(buf)
	}
	if closing {
		return gnet.Close
	}
	if q := gc.OutboundBuffered(); q > l.srv.limits().OutboundQueueBytes {
		c.markClosing(fmt.Sprintf("slow consumer: %d bytes unsent, limit %d", q, l.srv.limits().OutboundQueueBytes))
		l.srv.log.Warn("connection dropped", "conn", c.id, "proto", c.Protocol(), "remote", c.RemoteAddr(), "reason", c.closeReason())
		return gnet.Close
	}
	return gnet.None
}

// OnClose implements gnet.EventHandler.
func (l *loop) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok {
		return gnet.None
	}
	reason := "peer closed the connection"
	if err != nil {
		reason = fmt.Sprintf("connection error: %v", err)
	}
	l.srv.finished(c, c.markClosing(reason))
	return gnet.None
}

func (l *loop) stop(ctx context.Context) error {
	if err := l.eng.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop event loop: %w", err)
	}
	return nil
}
