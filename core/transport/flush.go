package transport

import (
	"context"
	"sync"

	"github.com/panjf2000/gnet/v2"
)

// An event loop connection with output queued is written by its event loop. Rather
// than one gnet task per connection (gnet.Conn.Wake: a task, a closure and a queue node
// each), connections with output are listed per event loop and one task writes them
// all: a group chat to 10,000 members costs each event loop one task, not 10,000. While
// the loop is busy, the list grows and a connection listed once gets everything queued
// to it since in one write.

// flusher lists one event loop's connections with output to write.
type flusher struct {
	l  *loop
	el gnet.EventLoop

	mu        sync.Mutex
	pending   []*Conn
	scheduled bool    // a task that takes pending is queued on el; under mu
	spare     []*Conn // the previous list, reused; only the loop's task touches it
}

var _ gnet.Runnable = (*flusher)(nil)

// flusherOf returns el's flusher, making it the first time.
func (l *loop) flusherOf(el gnet.EventLoop) *flusher {
	if fs := l.flushers.Load(); fs != nil {
		for _, f := range *fs {
			if f.el == el {
				return f
			}
		}
	}
	l.flushersMu.Lock()
	defer l.flushersMu.Unlock()
	var fs []*flusher
	if p := l.flushers.Load(); p != nil {
		fs = *p
	}
	for _, f := range fs {
		if f.el == el {
			return f
		}
	}
	f := &flusher{l: l, el: el}
	nfs := append(fs[:len(fs):len(fs)], f)
	l.flushers.Store(&nfs)
	return f
}

// wake lists c, whose event loop connection is gc, to be written by gc's event loop.
func (l *loop) wake(c *Conn, gc gnet.Conn) {
	f := l.flusherOf(gc.EventLoop())
	f.mu.Lock()
	f.pending = append(f.pending, c)
	schedule := !f.scheduled
	f.scheduled = true
	f.mu.Unlock()
	if schedule {
		if err := f.el.Execute(context.Background(), f); err != nil {
			// The engine is shutting down: its connections are being closed.
			f.mu.Lock()
			f.scheduled = false
			f.mu.Unlock()
		}
	}
}

// Run implements gnet.Runnable: on the event loop, it writes every listed connection.
func (f *flusher) Run(context.Context) error {
	f.mu.Lock()
	batch := f.pending
	f.pending = f.spare[:0]
	f.scheduled = false
	f.mu.Unlock()
	for i, c := range batch {
		batch[i] = nil
		gc, ok := c.writerConn()
		if !ok {
			continue // closed meanwhile: its gnet.Conn may be gone
		}
		if f.l.flushOut(c, gc) == gnet.Close {
			_ = f.el.Close(gc)
		}
	}
	if cap(batch) > 64<<10 {
		batch = nil // a burst's list: let it go
	}
	f.spare = batch[:0]
	return nil
}

// writerConn returns c's event loop connection while c is attached to one.
func (c *Conn) writerConn() (gnet.Conn, bool) {
	c.mu.Lock()
	gc, ok := c.w.(gnet.Conn)
	c.mu.Unlock()
	return gc, ok
}
