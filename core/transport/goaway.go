package transport

import (
	"context"
	"fmt"
	"slices"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/codec/ws"
	"github.com/timgw/timgw/core/packet"
)

// Goodbye says how ShutdownWith parts with the open connections.
type Goodbye struct {
	// Reason is logged, handed to the handler's Closed, and carried by WebSocket close
	// frames (status 1001, going away).
	Reason string
	// Notice, when its Body is set, is sent to every t-im TCP and WebSocket connection
	// (plain or TLS) as the goodbye starts, ahead of its close. Codec plugins' protocols
	// get none: their codec decides what a close says.
	Notice packet.Packet
	// Quiet: once the goodbye started, a connection is closed as soon as it has sent no
	// packet for this long and every packet it sent was handled (answered). 0: every
	// connection is closed at once, with what is queued to it.
	Quiet time.Duration
	// Grace bounds the wait for quiet: connections still sending then are closed.
	Grace time.Duration
}

// codeGoodbyer is a codec whose closing frame carries a status the transport chooses.
type codeGoodbyer interface {
	GoodbyeCode(dst []byte, code gws.StatusCode, reason string) []byte
}

var _ codeGoodbyer = (*ws.Codec)(nil)

// goodbyeOf returns what appends cd's closing frame, or nil when its protocol has none.
// goingAway asks for the shutdown's status where the codec takes one.
func goodbyeOf(cd codec.Codec, goingAway bool) func(dst []byte, reason string) []byte {
	if g, ok := cd.(codeGoodbyer); ok && goingAway {
		return func(dst []byte, reason string) []byte { return g.GoodbyeCode(dst, gws.StatusGoingAway, reason) }
	}
	if g, ok := cd.(codec.Goodbyer); ok {
		return g.Goodbye
	}
	return nil
}

// Shutdown is ShutdownWith a goodbye that closes every connection at once.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.ShutdownWith(ctx, Goodbye{Reason: "server shutting down"})
}

// ShutdownWith stops accepting (every port and the HTTP listener), parts with every
// connection as g says, waits up to ctx for them to be gone, and stops the event loops
// and the worker pool.
func (s *Server) ShutdownWith(ctx context.Context, g Goodbye) error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.lnMu.Lock()
		for l := range s.listeners {
			_ = l.ln.Close()
		}
		s.lnMu.Unlock()
		_ = s.http.Close()
	})
	if g.Quiet > 0 {
		start, n := time.Now(), s.Connections()
		s.log.Info("goodbye: telling clients the server is going away", "connections", n, "close_grace", g.Grace)
		busy := s.partWith(ctx, g)
		s.log.Info("goodbye over", "closed_when_quiet", n-busy, "closed_still_busy", busy, "took", time.Since(start).Round(time.Millisecond))
	}
	for s.Connections() > 0 {
		// Closing is idempotent: each round also closes a connection that was still being
		// sniffed when the listeners closed.
		for _, c := range s.snapshot() {
			c.closeWith(g.Reason, true)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shutdown: %d connections still open: %w", s.Connections(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	err := s.loop.stop(ctx)
	if perr := s.pool.ReleaseTimeout(time.Until(deadline(ctx, 5*time.Second))); perr != nil && err == nil {
		err = fmt.Errorf("stop worker pool: %w", perr)
	}
	s.wg.Wait()
	return err
}

// partWith sends g's notice to the open connections and closes each once it is quiet,
// until g.Grace, ctx or the last of them ends it. It returns how many it left open (still
// busy).
func (s *Server) partWith(ctx context.Context, g Goodbye) int {
	if g.Quiet <= 0 {
		return 0
	}
	conns := s.snapshot()
	for _, c := range conns {
		c.quiet() // what arrived before the goodbye does not count
		if g.Notice.Body != nil && c.proto <= protoWSSIndex {
			_ = c.Send(g.Notice) // a connection already closing needs none
		}
	}
	tick := time.NewTicker(g.Quiet)
	defer tick.Stop()
	grace := time.NewTimer(g.Grace)
	defer grace.Stop()
	for len(conns) > 0 {
		select {
		case <-tick.C:
		case <-grace.C:
			return len(conns)
		case <-ctx.Done():
			return len(conns)
		}
		conns = slices.DeleteFunc(conns, func(c *Conn) bool {
			if !c.quiet() {
				return false
			}
			c.closeWith(g.Reason, true)
			return true
		})
	}
	return 0
}

// protoWSSIndex is the last of the built-in protocols in the interned table (conn.go):
// tcp, ws, tls+tcp, wss.
const protoWSSIndex = 3

// quiet reports whether c sent no packet since the last call and has none waiting to be
// handled or being handled; a connection already closing is quiet.
func (c *Conn) quiet() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	heard := c.has(flHeard)
	c.set(flHeard, false)
	return c.has(flClosing) || !heard && c.inbox == nil && !c.has(flRunning) && c.pend == 0
}

// snapshot returns the open connections.
func (s *Server) snapshot() []*Conn {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return slices.Clone(s.conns)
}
