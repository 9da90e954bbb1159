package transport

import (
	"context"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// An event loop connection with output queued is written by its event loop. Rather
// than one gnet task per connection (gnet.Conn.Wake: a task, a closure and a queue node
// each), connections with output are listed per event loop and one task writes them
// all: a group chat to 10,000 members costs each event loop one task, not 10,000. While
// the loop is busy, the list grows and a connection listed once gets everything queued
// to it since in one write.
//
// While the handler is at a batch of some connection's packets (drain), the task is
// not queued at once but when that batch ends (or another one does): what the batch
// sends, a sender's 32 chats to one receiver or a group chat to its members, reaches
// each connection in one write. A batch that takes longer than maxHold kicks the
// flushers as it goes, and a timer kicks a flusher deferred for maxHold, so that nothing
// waits much longer than that.

// flusher lists one event loop's connections with output to write.
type flusher struct {
	l  *loop
	el gnet.EventLoop

	mu        sync.Mutex
	pending   []*Conn
	scheduled bool        // a task that takes pending is queued on el; under mu
	deferred  bool        // pending waits for the end of a batch (kick); under mu
	timer     *time.Timer // kicks a deferred flusher that no batch end kicked in time; under mu
	spare     []*Conn     // the previous list, reused; only the loop's task touches it
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
	schedule := false
	if !f.scheduled {
		// Read under f.mu: a batch that ends after this read kicks f after it.
		if l.batches.Load() > 0 {
			if !f.deferred {
				f.deferred = true
				f.armTimer()
			}
		} else {
			schedule, f.scheduled = true, true
		}
	}
	f.mu.Unlock()
	if schedule {
		f.execute()
	}
}

// armTimer makes sure a deferred f is kicked within maxHold even when no batch ends by
// then (a handler blocked in a slow call while others' wakes wait). The caller holds
// f.mu.
func (f *flusher) armTimer() {
	if f.timer == nil {
		f.timer = time.AfterFunc(maxHold, f.l.kick)
		return
	}
	f.timer.Reset(maxHold)
}

// execute queues f's task on its event loop.
func (f *flusher) execute() {
	if err := f.el.Execute(context.Background(), f); err != nil {
		// The engine is shutting down: its connections are being closed.
		f.mu.Lock()
		f.scheduled = false
		f.mu.Unlock()
	}
}

// batchBegin and batchEnd bracket the handler's work at a batch of packets: wakes
// meanwhile are deferred to the end of a batch.
func (l *loop) batchBegin() { l.batches.Add(1) }

func (l *loop) batchEnd() {
	l.batches.Add(-1)
	l.kick()
}

// kick queues the tasks of the flushers whose wakes were deferred.
func (l *loop) kick() {
	fs := l.flushers.Load()
	if fs == nil {
		return
	}
	for _, f := range *fs {
		f.mu.Lock()
		schedule := f.deferred && !f.scheduled
		if schedule {
			f.scheduled = true
		}
		f.deferred = false
		f.mu.Unlock()
		if schedule {
			f.execute()
		}
	}
}

// Run implements gnet.Runnable: on the event loop, it writes every listed connection.
func (f *flusher) Run(context.Context) error {
	f.mu.Lock()
	batch := f.pending
	f.pending = f.spare[:0]
	f.scheduled, f.deferred = false, false
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
