package transport

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/timgw/timgw/core/codec"
)

// Mode says what a listener serves.
type Mode string

// Listener modes: the shared port sniffs; the others serve one protocol.
const (
	ModeShared Mode = "shared"
	ModeTCP    Mode = "tcp"
	ModeWS     Mode = "ws"
	ModeHTTP   Mode = "http"
	ModeTLS    Mode = "tls"
)

// Listener is one listening port.
type Listener struct {
	srv  *Server
	mode Mode
	spec string
	ln   net.Listener
}

// Spec is the address the listener was asked to listen on, as configured (":8888").
func (l *Listener) Spec() string { return l.spec }

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Mode is what the listener serves.
func (l *Listener) Mode() Mode { return l.mode }

// Close stops accepting; connections it accepted stay open.
func (l *Listener) Close() error {
	l.srv.lnMu.Lock()
	delete(l.srv.listeners, l)
	l.srv.lnMu.Unlock()
	return l.ln.Close()
}

// Listen opens a listener on addr and starts accepting. mode is one of the Mode
// constants, or the name of a Protocol set with SetProtocols (a plugin's own port).
func (s *Server) Listen(mode Mode, addr string) (*Listener, error) {
	if mode == "" {
		return nil, fmt.Errorf("listen %s: empty mode", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (%s): %w", addr, mode, err)
	}
	l := &Listener{srv: s, mode: mode, spec: addr, ln: ln}
	s.lnMu.Lock()
	s.listeners[l] = struct{}{}
	s.lnMu.Unlock()
	s.wg.Add(1)
	go l.accept()
	s.log.Info("listening", "addr", ln.Addr().String(), "mode", string(mode))
	return l, nil
}

func (l *Listener) accept() {
	defer l.srv.wg.Done()
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.srv.log.Warn("accept failed", "addr", l.ln.Addr().String(), "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if reason := l.srv.adm.accept(nc.RemoteAddr(), l.srv.limits(), time.Now()); reason != "" {
			l.srv.refused(nc, reason)
			_ = nc.Close()
			continue
		}
		go l.srv.dispatch(l.mode, nc)
	}
}

// dispatch finds out what nc speaks and hands it to its path.
func (s *Server) dispatch(mode Mode, nc net.Conn) {
	switch mode {
	case ModeHTTP:
		s.http.hand(nc)
		return
	case ModeTCP:
		s.toLoop(ProtoTCP, nil, nc)
		return
	case ModeWS:
		s.toLoop(ProtoWS, nil, nc)
		return
	case ModeTLS:
		s.serveTLS(nc)
		return
	case ModeShared:
	default:
		p := s.protocol(string(mode))
		if p == nil {
			s.log.Warn("connection refused: protocol not configured", "protocol", string(mode), "remote", nc.RemoteAddr().String())
			_ = nc.Close()
			return
		}
		s.toLoop(p.Name(), p, nc)
		return
	}
	k, ext, err := s.peekKind(nc, s.limits().SniffTimeout)
	if err != nil {
		s.log.Debug("sniff failed", "remote", nc.RemoteAddr().String(), "err", err)
		_ = nc.Close()
		return
	}
	switch k {
	case kindTCP:
		s.toLoop(ProtoTCP, nil, nc)
	case kindWS:
		s.toLoop(ProtoWS, nil, nc)
	case kindExt:
		s.toLoop(ext.Name(), ext, nc)
	case kindHTTP:
		s.http.hand(nc)
	case kindTLS:
		s.serveTLS(nc)
	default:
		s.log.Info("unknown protocol, closing", "remote", nc.RemoteAddr().String())
		_ = nc.Close()
	}
}

// toLoop moves a plain connection into the event loop.
func (s *Server) toLoop(proto string, ext codec.Protocol, nc net.Conn) {
	_ = nc.SetReadDeadline(time.Time{})
	c, refused := s.newConn(proto, ext, nc.RemoteAddr())
	if c == nil {
		s.refused(nc, refused)
		_ = nc.Close()
		return
	}
	if err := s.loop.register(c, nc); err != nil {
		s.log.Warn("connection refused", "remote", nc.RemoteAddr().String(), "err", err)
		_ = nc.Close()
		c.markClosing(err.Error())
		s.finished(c, err.Error())
	}
}

// peekKind reads the first bytes of nc without consuming them (MSG_PEEK) until they tell
// the protocol, or timeout passes.
func (s *Server) peekKind(nc net.Conn, timeout time.Duration) (kind, codec.Protocol, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return kindUnknown, nil, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return kindUnknown, nil, fmt.Errorf("raw conn: %w", err)
	}
	protos := s.protocols()
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(timeout))
	defer nc.SetReadDeadline(time.Time{})
	buf := make([]byte, 512)
	last := 0
	for wait := time.Millisecond; ; {
		var n int
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, serr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
			return serr != syscall.EAGAIN
		})
		if err != nil {
			return kindUnknown, nil, fmt.Errorf("peek: %w", err)
		}
		if serr != nil {
			return kindUnknown, nil, fmt.Errorf("peek: %w", serr)
		}
		if n == 0 {
			return kindUnknown, nil, errors.New("closed before sending")
		}
		k, ext := sniffAll(buf[:n], protos)
		if k != kindMore {
			return k, ext, nil
		}
		if n == len(buf) {
			if len(buf) >= maxSniff {
				return kindHTTP, nil, nil
			}
			buf = make([]byte, 2*len(buf))
			continue
		}
		// The bytes so far are all there is: wait for more (the socket stays readable, so
		// polling is the only way to wait without consuming).
		if n == last {
			wait = min(2*wait, 50*time.Millisecond)
		}
		last = n
		if time.Now().Add(wait).After(start.Add(timeout)) {
			return kindUnknown, nil, fmt.Errorf("peek: incomplete protocol header after %s", timeout)
		}
		time.Sleep(wait)
	}
}

// serveTLS terminates TLS and sniffs again inside it.
func (s *Server) serveTLS(nc net.Conn) {
	if !s.TLSEnabled() {
		s.log.Info("TLS client but no certificate configured, closing", "remote", nc.RemoteAddr().String())
		_ = nc.Close()
		return
	}
	timeout := s.limits().SniffTimeout
	tc := tls.Server(nc, s.tlsConf)
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		s.log.Info("TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		_ = nc.Close()
		return
	}
	br := bufio.NewReaderSize(tc, 4096)
	protos := s.protocols()
	k, ext := kindMore, codec.Protocol(nil)
	for want := 1; k == kindMore; {
		// Peek(want) blocks until that many bytes arrived; then look at all there is.
		if _, err := br.Peek(want); err != nil {
			s.log.Debug("sniff over TLS failed", "remote", nc.RemoteAddr().String(), "err", err)
			_ = tc.Close()
			return
		}
		b, _ := br.Peek(br.Buffered())
		k, ext = sniffAll(b, protos)
		if k == kindMore {
			if len(b) == br.Size() {
				k = kindHTTP // a request head larger than the buffer: let HTTP answer it
				break
			}
			want = len(b) + 1
		}
	}
	_ = tc.SetDeadline(time.Time{})
	bc := &bufferedConn{Conn: tc, r: br}
	switch k {
	case kindTCP:
		s.serveStream(ProtoTLSTCP, nil, bc, br)
	case kindWS:
		s.serveStream(ProtoWSS, nil, bc, br)
	case kindExt:
		s.serveStream(ext.Name()+tlsSuffix, ext, bc, br)
	case kindHTTP:
		s.http.hand(bc)
	default:
		s.log.Info("unknown protocol inside TLS, closing", "remote", nc.RemoteAddr().String())
		_ = tc.Close()
	}
}
