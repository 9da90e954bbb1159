// Package httpapi is timgw's HTTP API, served with hertz on listeners the transport
// hands over (the shared, sniffed port, and optional dedicated http ports).
//
// It serves J-IM's compatibility endpoints (/api/message/send, /api/user/online,
// /api/user/close), a JSON API under /api/v1/ for sending messages and querying and
// administering users and groups, and /health. Everything but /health needs an API key.
// README.md is the endpoint reference.
//
// The package defines what it needs from the core as the Gateway interface.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/network/standard"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultSystemUser     = "system"
	DefaultReadTimeout    = 30 * time.Second
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultHandlerTimeout = 10 * time.Second
	DefaultBodyTimeout    = 10 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("httpapi: server closed")

// Options configure a Server. Zero values take the defaults above.
type Options struct {
	// Keys are the accepted API keys. With none, every request but /health is refused
	// (401). They can be replaced at run time with Server.SetKeys. Empty keys are ignored.
	Keys []string
	// SystemUser is the sender of messages sent "as the system" (/api/v1/messages/system,
	// and J-IM sends with no "from"). Default "system".
	SystemUser string
	// MaxBodyBytes is the largest request body accepted; a larger one is answered 413,
	// code 10026. Default 1 MiB.
	MaxBodyBytes int
	// ReadTimeout bounds reading one request (headers and body), and each write of an
	// answer. Default 30s.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 2 minutes.
	IdleTimeout time.Duration
	// HandlerTimeout bounds each Gateway call (the context it gets). Default 10s.
	HandlerTimeout time.Duration
	// BodyTimeout bounds reading one request body, from the end of its headers: a body
	// still incomplete then is answered 408 (or 400, code 10020, once a handler reads
	// it) and the connection is closed. ReadTimeout still bounds the whole request.
	// Default 10s; replaceable with SetBodyTimeout.
	BodyTimeout time.Duration
	// Extra are more routes served beside the API (the admin endpoints and pages),
	// as net/http handlers. They do their own authorization.
	Extra []Route
	// Logger receives the access log (debug for successes, info for 4xx, warn for 5xx)
	// and errors. Default slog.Default(). Hertz's own log is routed separately: see
	// SetHertzLogger.
	Logger *slog.Logger
	// Degraded, when set, says why the gateway works only in part ("" when it works
	// fully): /health then answers 200 with status "degraded" and the reason (a cluster
	// node whose bus is down still serves its own clients). Called from many goroutines.
	Degraded func() string
}

// Route is an extra route: a method, a path and a net/http handler.
type Route struct {
	Method, Path string
	Handler      http.Handler
}

// Server is the HTTP API. It is safe for concurrent use; Serve may be called for
// several listeners at once.
type Server struct {
	gw    Gateway
	opts  Options
	log   *slog.Logger
	keys  atomic.Pointer[keySet]
	stats StatsSource // nil when gw does not implement it
	recal Recaller    // nil when gw does not implement it

	// baseCtx is the parent of every Gateway call's context; cancelled when Shutdown
	// gives up waiting.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	bodyTimeout atomic.Int64 // Options.BodyTimeout, replaceable with SetBodyTimeout

	inflight atomic.Int64 // requests inside a handler
	closing  atomic.Bool

	mu        sync.Mutex
	closed    bool
	listeners map[*trackingListener]struct{}
	conns     map[*trackedConn]struct{}
}

// New returns a Server that answers with gw. It does not listen: call Serve.
func New(gw Gateway, opts Options) *Server {
	if opts.SystemUser == "" {
		opts.SystemUser = DefaultSystemUser
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.HandlerTimeout <= 0 {
		opts.HandlerTimeout = DefaultHandlerTimeout
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{
		gw:        gw,
		opts:      opts,
		log:       opts.Logger.With("component", "httpapi"),
		listeners: make(map[*trackingListener]struct{}),
		conns:     make(map[*trackedConn]struct{}),
	}
	s.stats, _ = gw.(StatsSource)
	s.recal, _ = gw.(Recaller)
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.SetKeys(opts.Keys)
	s.SetBodyTimeout(opts.BodyTimeout)
	return s
}

// SetBodyTimeout replaces Options.BodyTimeout for bodies whose headers end from now on
// (a configuration reload); a non-positive d means DefaultBodyTimeout. Safe for
// concurrent use.
func (s *Server) SetBodyTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultBodyTimeout
	}
	s.bodyTimeout.Store(int64(d))
}

// SetKeys replaces the accepted API keys (on a configuration reload). Requests in
// progress finish with the keys they were checked against. Safe for concurrent use.
func (s *Server) SetKeys(keys []string) {
	s.keys.Store(newKeySet(keys))
}

// Serve answers HTTP requests on connections accepted from ln until Shutdown, and
// returns nil then (ErrServerClosed if Shutdown came first). It blocks. The Server
// takes ln over: Shutdown closes it.
//
// ln may be the transport's channel-fed listener: its Accept must return an error
// once it is closed (net.ErrClosed or any error, after Close). Temporary Accept
// errors (too many open files) are retried with a backoff, so a full file table does
// not stop the API.
func (s *Server) Serve(ln net.Listener) error {
	tl := &trackingListener{Listener: ln, s: s}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[tl] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, tl)
		s.mu.Unlock()
	}()

	h := server.New(
		server.WithListener(tl),
		server.WithTransport(standard.NewTransporter),
		server.WithStreamBody(true), // bodies are read by readBody, with MaxBodyBytes
		server.WithMaxRequestBodySize(s.opts.MaxBodyBytes),
		server.WithDisablePreParseMultipartForm(true),
		server.WithReadTimeout(s.opts.ReadTimeout),
		server.WithIdleTimeout(s.opts.IdleTimeout),
		server.WithRedirectTrailingSlash(false),
		server.WithRedirectFixedPath(false),
		server.WithHandleMethodNotAllowed(true),
		server.WithUseRawPath(true), // route on the raw path: ids may contain %2F
		server.WithUnescapePathValues(true),
		server.WithDisablePrintRoute(true),
		server.WithExitWaitTime(time.Second),
	)
	h.Name = "timgw"
	s.routes(h)
	if err := h.Run(); err != nil {
		return fmt.Errorf("httpapi: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// BeginShutdown makes /health answer 503 from now on, so that load balancers stop
// sending new clients while the gateway drains. Shutdown does it too.
func (s *Server) BeginShutdown() { s.closing.Store(true) }

// Shutdown stops the API gracefully: it closes the listeners, lets requests in progress
// finish (their responses carry Connection: close), closes idle keep-alive connections,
// and returns when all connections are closed. When ctx ends first, it cancels the
// Gateway calls still running, closes every connection and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	s.closed = true
	lns := make([]*trackingListener, 0, len(s.listeners))
	for l := range s.listeners {
		lns = append(lns, l)
	}
	s.mu.Unlock()

	var errs []error
	for _, l := range lns {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("httpapi: close listener %s: %w", l.Addr(), err))
		}
	}

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var ctxErr error
	for s.inflight.Load() > 0 && ctxErr == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	}
	s.cancelBase()
	// No handler is running (or we gave up waiting): what is left is idle
	// keep-alive connections, or stuck ones.
	s.closeConns()
	if ctxErr != nil {
		errs = append(errs, fmt.Errorf("httpapi: shutdown: %w", ctxErr))
	}
	return errors.Join(errs...)
}

func (s *Server) closeConns() {
	s.mu.Lock()
	cs := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

// trackingListener records the connections it hands out, so that Shutdown can close
// idle keep-alive connections (hertz would wait for them to time out), and retries
// temporary Accept errors (hertz's standard transport gives up on the first error).
type trackingListener struct {
	net.Listener
	s      *Server
	closed atomic.Bool
}

// Accept implements net.Listener.
func (l *trackingListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			tc := &trackedConn{Conn: c, s: l.s}
			// hertz's standard transport sets no deadline for a connection's first
			// request: a client trickling its headers would hold it forever.
			_ = tc.SetReadDeadline(time.Now().Add(l.s.opts.ReadTimeout))
			l.s.mu.Lock()
			closed := l.s.closed
			if !closed {
				l.s.conns[tc] = struct{}{}
			}
			l.s.mu.Unlock()
			if closed {
				_ = c.Close()
				return nil, net.ErrClosed
			}
			return tc, nil
		}
		if l.closed.Load() || errors.Is(err, net.ErrClosed) {
			// hertz stops quietly on an error whose text says "closed".
			return nil, net.ErrClosed
		}
		var ne interface{ Temporary() bool }
		if !errors.As(err, &ne) || !ne.Temporary() {
			return nil, fmt.Errorf("accept: %w", err)
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		l.s.log.Warn("accept failed, retrying", "err", err, "delay", delay)
		time.Sleep(delay)
	}
}

// Close implements net.Listener.
func (l *trackingListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// trackedConn removes itself from the server's set when closed, bounds each write
// (hertz's standard transport sets no write deadline: a client that does not read
// would block its answer forever), and bounds request bodies: it follows the requests
// it reads (bodyWatch) and, while a body is being read, reads with the earlier of
// hertz's deadline and the body's (BodyTimeout from the end of the headers). Headers
// declaring a body over MaxBodyBytes by more than readBody would drain end reading at
// once: hertz then hands the request to its handler with what it has, readBody answers
// 413 without waiting for the body, and the connection closes (lingering: see linger).
type trackedConn struct {
	net.Conn
	s     *Server
	once  sync.Once
	watch bodyWatch // used by Read only (one reader: hertz's connection goroutine)

	dlMu    sync.Mutex
	readDL  time.Time // the read deadline hertz asked for
	bodyDL  time.Time // the deadline of the body being read; zero when none
	refused bool      // headers declared an over-limit body: reads fail from now on
}

// Read implements net.Conn.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		ev := c.watch.feed(p[:n])
		// A body over the limit by no more than readBody drains is read (within
		// BodyTimeout) so that the client, writing it, gets to read the 413 and may
		// reuse the connection; beyond that, nothing more is read.
		over := ev.declared > int64(c.s.opts.MaxBodyBytes)+drainLimit
		if over || ev.bodyStarted || ev.bodyEnded {
			c.dlMu.Lock()
			switch {
			case over:
				c.refused = true
				c.bodyDL = time.Unix(1, 0) // in the past: the next read fails at once
			case c.watch.inBody() && ev.bodyStarted:
				c.bodyDL = time.Now().Add(time.Duration(c.s.bodyTimeout.Load()))
			case !c.watch.inBody() && !c.refused:
				c.bodyDL = time.Time{}
			}
			c.applyReadDeadline()
			c.dlMu.Unlock()
		}
	}
	return n, err
}

// SetReadDeadline implements net.Conn: t applies, or the body's deadline when earlier.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.readDL = t
	return c.applyReadDeadline()
}

// SetDeadline implements net.Conn.
func (c *trackedConn) SetDeadline(t time.Time) error {
	return errors.Join(c.Conn.SetWriteDeadline(t), c.SetReadDeadline(t))
}

// applyReadDeadline sets the earlier of readDL and bodyDL; dlMu is held.
func (c *trackedConn) applyReadDeadline() error {
	dl := c.readDL
	if !c.bodyDL.IsZero() && (dl.IsZero() || c.bodyDL.Before(dl)) {
		dl = c.bodyDL
	}
	return c.Conn.SetReadDeadline(dl)
}

// Write implements net.Conn.
func (c *trackedConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.s.opts.ReadTimeout))
	return c.Conn.Write(p)
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.linger()
		err = c.Conn.Close()
	})
	return err
}

// Lingering close of a connection whose body was refused unread.
const (
	lingerTime  = time.Second
	lingerBytes = 256 << 10
)

// linger reads and discards what a client refused for an over-limit body is still
// sending, for a moment, before the connection closes: closing a socket with unread
// data resets it, and the client could lose the 413 it has not read yet.
func (c *trackedConn) linger() {
	c.dlMu.Lock()
	refused := c.refused
	c.bodyDL = time.Time{}
	c.dlMu.Unlock()
	if !refused {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
}
