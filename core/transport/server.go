// Package transport owns timgw's sockets. It accepts connections on the shared port and
// on dedicated ports, tells protocols apart by their first bytes (sniff.go), runs t-im TCP
// and WebSocket connections in a gnet event loop with no goroutine per idle connection
// (loop.go), terminates TLS on a goroutine-per-connection path (stream.go), and hands
// HTTP connections to the HTTP server through a listener (httpln.go). Per-packet work runs
// on an ants goroutine pool, in order per connection.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/codec/tcp"
	"github.com/timgw/timgw/core/codec/ws"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
)

// Handler receives what connections carry. For one connection the calls come one at a
// time and in order (Opened, Packet..., Closed), each from a pool worker; calls for
// different connections run concurrently.
type Handler interface {
	// Opened is called first for every connection.
	Opened(c *Conn)
	// Packet is called for every decoded packet.
	Packet(c *Conn, p packet.Packet)
	// Closed is called last, once, with the reason the connection ended.
	Closed(c *Conn, reason string)
}

// Protocol names, as Conn.Protocol reports them.
const (
	ProtoTCP    = "tcp"
	ProtoWS     = "ws"
	ProtoTLSTCP = "tls+tcp"
	ProtoWSS    = "wss"
)

// tlsSuffix marks a codec plugin's protocol name when its connection is TLS
// ("mqtt+tls"); Conn.Transport reports it as TLS on the plugin's protocol.
const tlsSuffix = "+tls"

// Options configure a Server.
type Options struct {
	Handler Handler
	Limits  config.Limits
	Runtime config.Runtime
	Logger  *slog.Logger
}

// Server runs the gateway's listeners and connections.
type Server struct {
	handler Handler
	log     *slog.Logger
	lim     atomic.Pointer[config.Limits]
	pool    *ants.Pool
	loop    *loop
	http    *chanListener
	cert    atomic.Pointer[tls.Certificate]
	protos  atomic.Pointer[[]codec.Protocol]
	tlsConf *tls.Config

	nextID  atomic.Uint64
	stats   Stats
	clock   atomic.Int64 // unix seconds, updated by the reaper
	count   atomic.Int64
	connsMu sync.Mutex
	conns   []*Conn                   // open connections, each at its slot-1 (a map would cost more per connection)
	tcpC    atomic.Pointer[sharedTCP] // the TCP codec keeps no per-connection state: one serves all

	lnMu      sync.Mutex
	listeners map[*Listener]struct{}
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	adm admission // per-client-address limits (admit.go)
}

// New starts the event loops and the worker pool. Listeners are added with Listen.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{
		handler:   opts.Handler,
		log:       opts.Logger,
		listeners: make(map[*Listener]struct{}),
		closed:    make(chan struct{}),
		http:      newChanListener(),
	}
	lim := opts.Limits
	s.lim.Store(&lim)
	s.clock.Store(time.Now().Unix())
	workers := opts.Runtime.Workers
	if workers <= 0 {
		workers = 64 * numCPU()
	}
	pool, err := ants.NewPool(workers, ants.WithPreAlloc(false), ants.WithLogger(newLibLogger(opts.Logger, "ants")))
	if err != nil {
		return nil, fmt.Errorf("worker pool: %w", err)
	}
	s.pool = pool
	s.tlsConf = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := s.cert.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("no certificate configured")
		},
	}
	s.loop, err = startLoop(s, opts.Runtime.EventLoops)
	if err != nil {
		pool.Release()
		return nil, err
	}
	s.wg.Add(1)
	go s.reap()
	return s, nil
}

func (s *Server) limits() *config.Limits { return s.lim.Load() }

// SetLimits swaps the limits for new packets and connections (config reload).
func (s *Server) SetLimits(l config.Limits) { s.lim.Store(&l) }

// SetCertificate sets or rotates the TLS certificate; nil turns TLS off for new
// connections. Established connections keep theirs.
func (s *Server) SetCertificate(c *tls.Certificate) { s.cert.Store(c) }

// Certificate returns the current TLS certificate, or nil.
func (s *Server) Certificate() *tls.Certificate { return s.cert.Load() }

// SetWorkers resizes the worker pool (0: 64 per CPU).
func (s *Server) SetWorkers(n int) {
	if n <= 0 {
		n = 64 * numCPU()
	}
	s.pool.Tune(n)
}

// TLSEnabled reports whether a certificate is configured.
func (s *Server) TLSEnabled() bool { return s.cert.Load() != nil }

// HTTPListener is where HTTP connections from every listener arrive; serve it with the
// HTTP server.
func (s *Server) HTTPListener() net.Listener { return s.http }

// Batch runs f holding back the writes it queues to event loop connections until it
// returns (at most maxHold, as a handler's batch of packets does): many answers sent by
// one goroutine (the store's callback completing a batch of chats) then reach each
// connection, and each event loop, in few writes rather than one each.
func (s *Server) Batch(f func()) {
	if s.loop == nil {
		f()
		return
	}
	s.loop.batchBegin()
	defer s.loop.batchEnd()
	f()
}

// Go runs f on the worker pool (in place when the pool is closed).
func (s *Server) Go(f func()) { s.submit(f) }

func (s *Server) submit(f func()) {
	if err := s.pool.Submit(f); err != nil {
		// The pool is closed (shutting down) or cannot take work: run in place so that
		// no packet is dropped unseen.
		f()
	}
}

// SetProtocols sets the protocols beyond the built-in ones that the shared port
// recognises (codec plugins), in the order they are consulted. Connections already open
// keep theirs.
func (s *Server) SetProtocols(ps []codec.Protocol) { s.protos.Store(&ps) }

func (s *Server) protocols() []codec.Protocol {
	if p := s.protos.Load(); p != nil {
		return *p
	}
	return nil
}

// protocol finds a configured protocol by name.
func (s *Server) protocol(name string) codec.Protocol {
	for _, p := range s.protocols() {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

func (s *Server) newCodec(proto string, ext codec.Protocol) codec.Codec {
	o := codec.Options{MaxFrame: s.limits().MaxFrameBytes}
	switch {
	case ext != nil:
		return ext.NewCodec(o)
	case proto == ProtoWS || proto == ProtoWSS:
		return ws.New(o)
	default:
		// The TCP codec is stateless: connections share one per frame limit.
		if t := s.tcpC.Load(); t != nil && t.maxFrame == o.MaxFrame {
			return t.c
		}
		t := &sharedTCP{maxFrame: o.MaxFrame, c: tcp.New(o)}
		s.tcpC.Store(t)
		return t.c
	}
}

// sharedTCP is the TCP codec for one frame limit.
type sharedTCP struct {
	maxFrame int
	c        *tcp.Codec
}

// newConn creates and registers a connection of a built-in protocol (ext nil) or of ext;
// it returns nil and the reason (Refused*) when a connection cap is reached.
func (s *Server) newConn(proto string, ext codec.Protocol, remote net.Addr) (*Conn, string) {
	lim := s.limits()
	if max := lim.MaxConnections; max > 0 && s.count.Load() >= int64(max) {
		s.adm.refuse(RefusedMaxConnections)
		return nil, RefusedMaxConnections
	}
	ap := addrPort(remote)
	if !s.adm.open(ap.Addr(), lim.MaxConnectionsPerIP) {
		s.adm.refuse(RefusedPerIP)
		return nil, RefusedPerIP
	}
	c := &Conn{id: s.nextID.Add(1), proto: protoIndex(proto), srv: s, codec: s.newCodec(proto, ext)}
	c.setRemote(ap)
	if a, ok := c.codec.(codec.Attacher); ok {
		a.Attach(c)
	}
	c.lastRead.Store(uint32(s.clock.Load()))
	s.count.Add(1)
	s.connsMu.Lock()
	s.conns = append(s.conns, c)
	c.slot = uint32(len(s.conns))
	s.connsMu.Unlock()
	c.push(event{kind: evOpen})
	return c, ""
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// finished is called once when a connection is gone.
func (s *Server) finished(c *Conn, reason string) {
	if !s.unlist(c) {
		return
	}
	s.count.Add(-1)
	s.adm.close(c.remoteAddrPort().Addr())
	s.log.Debug("connection closed", "conn", c.id, "proto", c.Protocol(), "remote", c.RemoteAddr(), "reason", reason)
	if d, ok := c.codec.(codec.Drainer); ok {
		// An asynchronous codec may still inject packets the peer sent before it left.
		d.Drain(func() { c.push(event{kind: evClosed, reason: reason}) })
		return
	}
	if d, ok := c.codec.(codec.Detacher); ok {
		d.Detach()
	}
	c.push(event{kind: evClosed, reason: reason})
}

// unlist removes c from the open connections; it reports false when it was not listed.
func (s *Server) unlist(c *Conn) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if c.slot == 0 {
		return false
	}
	i, last := int(c.slot-1), len(s.conns)-1
	moved := s.conns[last]
	s.conns[i], moved.slot = moved, c.slot
	s.conns[last] = nil
	s.conns = s.conns[:last]
	c.slot = 0
	if cap(s.conns) > 1024 && len(s.conns) < cap(s.conns)/4 {
		s.conns = append([]*Conn(nil), s.conns...) // give back a drained peak's array
	}
	return true
}

// Stats are the transport's traffic counters.
type Stats struct {
	PacketsIn, PacketsOut atomic.Uint64
	BytesIn, BytesOut     atomic.Uint64
}

// Stats returns the traffic counters.
func (s *Server) Stats() *Stats { return &s.stats }

// ConnectionsByProtocol counts open connections by protocol (HTTP excluded).
func (s *Server) ConnectionsByProtocol() map[string]int {
	out := make(map[string]int)
	s.connsMu.Lock()
	for _, c := range s.conns {
		out[c.Protocol()]++
	}
	s.connsMu.Unlock()
	return out
}

// Connections returns the number of open TCP and WebSocket connections (HTTP excluded).
func (s *Server) Connections() int { return int(s.count.Load()) }

// reap closes idle connections and connections with a frame incomplete for too long
// (frametimeout.go), and keeps the coarse clock.
func (s *Server) reap() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var idle, slow []*Conn
	for {
		select {
		case <-s.closed:
			return
		case now := <-t.C:
			s.clock.Store(now.Unix())
			timeout, frameTimeout := s.limits().IdleTimeout, s.limits().FrameTimeout
			cutoff := idleCutoff(now, timeout)
			stamp := frameStamp(now.Unix())
			idle, slow = idle[:0], slow[:0]
			s.connsMu.Lock()
			for _, c := range s.conns {
				switch {
				case timeout > 0 && int64(c.lastRead.Load()) < cutoff:
					idle = append(idle, c)
				case frameTimeout > 0 && c.frameOverdue(stamp, frameTimeout):
					slow = append(slow, c)
				}
			}
			s.connsMu.Unlock()
			for _, c := range idle {
				c.Close(fmt.Sprintf("idle timeout: nothing received for %s", timeout))
			}
			for _, c := range slow {
				c.frameTimedOut(frameTimeout)
			}
		}
	}
}

// idleCutoff is the oldest Conn.lastRead a connection may have at now and stay open.
// lastRead holds the coarse clock (unix seconds, set by the previous tick), which lags
// the real read by up to a tick and a late tick's delay: the extra second makes sure a
// connection is never closed before it was silent for the whole timeout (it is closed
// between timeout and about timeout+2s).
func idleCutoff(now time.Time, timeout time.Duration) int64 {
	return now.Add(-timeout).Unix() - 1
}

func deadline(ctx context.Context, def time.Duration) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(def)
}
