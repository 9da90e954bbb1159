package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/timgw/timgw/core/codec"
)

// streamWaker signals a stream connection's writer goroutine.
type streamWaker chan struct{}

func (w streamWaker) wake() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// writeTimeout bounds one write to a stream connection; a peer that reads nothing for
// this long is dropped.
const writeTimeout = 10 * time.Second

// serveStream runs a connection that the event loop cannot take (TLS): a reader goroutine
// and a writer goroutine, with the same codec, queues and handler as the loop.
func (s *Server) serveStream(proto string, ext codec.Protocol, nc net.Conn, r *bufio.Reader) {
	c, refused := s.newConn(proto, ext, nc.RemoteAddr())
	if c == nil {
		s.refused(nc, refused)
		_ = nc.Close()
		return
	}
	w := make(streamWaker, 1)
	c.setWaker(w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range w {
			buf, closing, abort := c.takeOut()
			if abort {
				s.log.Warn("connection dropped", "conn", c.id, "proto", c.Protocol(), "remote", c.RemoteAddr(), "reason", c.closeReason())
				_ = nc.Close()
				return
			}
			if buf != nil && len(*buf) > 0 {
				_ = nc.SetWriteDeadline(time.Now().Add(writeTimeout))
				if _, err := nc.Write(*buf); err != nil {
					c.markClosing(fmt.Sprintf("write failed: %v", err))
					_ = nc.Close()
					return
				}
			}
			c.giveBack(buf)
			if closing {
				_ = nc.Close()
				return
			}
		}
	}()

	reason := c.markClosing(s.readStream(c, nc, r, w))
	w.wake()
	<-done
	s.finished(c, reason)
}

// readStream decodes until the connection ends and returns why it ended.
func (s *Server) readStream(c *Conn, nc net.Conn, r *bufio.Reader, w streamWaker) string {
	buf := make([]byte, 0, 4096)
	var d codec.Decoded
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			c.lastRead.Store(uint32(s.clock.Load()))
			s.stats.BytesIn.Add(uint64(n))
			consumed, derr := c.codec.Decode(buf, &d)
			buf = buf[:copy(buf, buf[consumed:])]
			c.trackFrame(c.incomplete(len(buf)), len(d.Packets) > 0)
			if len(d.Reply) > 0 {
				c.reply(d.Reply)
				w.wake()
			}
			c.deliverDecoded(&d)
			closeNow := d.Close
			d.Reset()
			if derr != nil {
				c.protocolError(derr, func(b []byte) {
					_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
					_, _ = nc.Write(b)
				})
				_ = nc.Close()
				return c.closeReason()
			}
			if closeNow {
				c.Close("peer closed the WebSocket")
				return "peer closed the WebSocket"
			}
			if len(buf) > s.limits().MaxFrameBytes+maxSniff {
				c.Close("inbound buffer over limit")
				return "inbound buffer over limit"
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "peer closed the connection"
			}
			if r := c.closeReason(); r != "" {
				return r
			}
			return fmt.Sprintf("read failed: %v", err)
		}
	}
}
