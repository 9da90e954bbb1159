package transport

import (
	"bufio"
	"net"
	"sync"
)

// chanListener is a net.Listener fed by the sniffing listeners with the connections that
// speak HTTP. The HTTP server serves it like any listener.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

var _ net.Listener = (*chanListener)(nil)

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn, 128), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *chanListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		for {
			select {
			case c := <-l.ch:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr implements net.Listener.
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

// hand passes an HTTP connection to the HTTP server, or closes it when shutting down.
func (l *chanListener) hand(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// bufferedConn is a net.Conn whose first bytes were already read into a bufio.Reader
// (sniffing after a TLS handshake).
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
