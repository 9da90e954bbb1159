package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// A connection may have several stored chats on their way at once
// (limits.pipelined_chats). The write stream stores and answers them in the order they
// were queued; this file keeps that order for what happens after: their deliveries
// (strands) and, when the plugin died with chats in flight, their retries (retryQueue).

// strands runs the deliveries of stored chats so that those of one sending connection
// happen in the order the chats were stored, while different connections' run in
// parallel. A delivery may run inline (on the store's callback goroutine, which
// completes chats in order) unless an earlier delivery of the same connection is still
// queued on the executor; then it queues behind it.
type strands struct {
	exec   func(func())
	active atomic.Int64 // len(m): inline deliveries skip the map while it is 0
	mu     sync.Mutex
	m      map[uint64]*strand
}

// strand is the queue of one connection's deliveries waiting for the executor.
type strand struct{ q []func() }

// run runs f, the delivery of a chat from connection key (0: none, no order kept):
// inline when allowed and nothing of key is queued, else on the executor after what key
// has queued.
func (s *strands) run(key uint64, inline bool, f func()) {
	if key == 0 {
		if inline {
			f()
		} else {
			s.exec(f)
		}
		return
	}
	if inline && s.active.Load() == 0 {
		f()
		return
	}
	s.mu.Lock()
	st := s.m[key]
	if st == nil {
		if inline {
			s.mu.Unlock()
			f()
			return
		}
		if s.m == nil {
			s.m = make(map[uint64]*strand)
		}
		st = &strand{}
		s.m[key] = st
		s.active.Add(1)
		st.q = append(st.q, f)
		s.mu.Unlock()
		s.exec(func() { s.drain(key, st) })
		return
	}
	st.q = append(st.q, f)
	s.mu.Unlock()
}

// drain runs st's queue in order, and forgets st once it is empty.
func (s *strands) drain(key uint64, st *strand) {
	for {
		s.mu.Lock()
		if len(st.q) == 0 {
			delete(s.m, key)
			s.active.Add(-1)
			s.mu.Unlock()
			return
		}
		f := st.q[0]
		st.q[0] = nil
		st.q = st.q[1:]
		s.mu.Unlock()
		f()
	}
}

// retryItem is a chat whose store attempt failed because the plugin went away.
type retryItem struct {
	seq     uint64 // the order the chat was queued in (Deliverer.seq)
	ctx     context.Context
	env     router.Envelope
	req     *appendReq
	start   time.Time
	attempt int // attempts made; > 0: an earlier one may have stored it
	done    func(router.Outcome, error)
}

// retryQueue stores again, in order, the chats whose plugin went away with them in
// flight (and the chats that come meanwhile): one goroutine waits for the plugin's
// restart and queues them on the new write stream in the order they were first queued
// (seq), so that a connection's chats keep their order, and their seqs, through a crash.
// A chat is refused (10030) once its write timeout passes. New chats go behind until every
// chat queued again is answered: one queued on a stream that breaks in turn comes back
// to the queue, and nothing later may overtake it meanwhile.
type retryQueue struct {
	d        *Deliverer
	mu       sync.Mutex
	items    []retryItem // by seq
	running  bool
	inflight int         // chats queued again and not answered yet
	busy     atomic.Bool // running, items or inflight: new chats go behind them
}

// settle counts a chat queued again as answered (after what its answer led to).
func (q *retryQueue) settle() {
	q.mu.Lock()
	q.inflight--
	q.busy.Store(q.running || len(q.items) > 0 || q.inflight > 0)
	q.mu.Unlock()
}

// add queues it in seq order and starts the goroutine when none runs.
func (q *retryQueue) add(it retryItem) {
	q.mu.Lock()
	i := len(q.items)
	for i > 0 && q.items[i-1].seq > it.seq {
		i--
	}
	q.items = slices.Insert(q.items, i, it)
	start := !q.running
	q.running = true
	q.busy.Store(true)
	q.mu.Unlock()
	if start {
		go q.loop()
	}
}

// loop queues the items again, oldest first, until none is left. It starts after a
// moment, time for every chat of the broken stream to fail and be sorted in, and for the
// supervisor to notice a dead plugin. (A chat of the same connection that reached a new
// stream in that moment, because the stream broke while the plugin lived on, can be
// stored before an earlier one: the one order this does not keep.)
func (q *retryQueue) loop() {
	time.Sleep(20 * time.Millisecond)
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		if len(items) == 0 {
			q.running = false
			q.busy.Store(q.inflight > 0)
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		for i := range items {
			if !q.again(items[i]) {
				// The plugin is not back yet: a moment for the supervisor to notice a
				// dead plugin, then the same items again, in order.
				time.Sleep(20 * time.Millisecond)
				for _, it := range items[i:] {
					q.add(it)
				}
				break
			}
			items[i] = retryItem{}
		}
	}
}

// again queues it on the current write stream, waiting (within its deadline) for the
// plugin to be back; false: it is not back yet (it was not queued).
func (q *retryQueue) again(it retryItem) bool {
	d := q.d
	deadline := it.start.Add(d.timeout)
	left := time.Until(deadline)
	if left <= 0 {
		d.metrics.failed(opAppend, context.DeadlineExceeded)
		it.done(router.Outcome{}, fmt.Errorf("store chat %s: the plugin was unavailable for its whole write timeout (%d attempts): %w",
			it.req.Message.Id, it.attempt, router.ErrUnavailable))
		return true
	}
	ctx, cancel := context.WithDeadline(it.ctx, deadline)
	c, err := d.src.get(ctx, min(retryWait, left))
	cancel()
	if err != nil {
		return false
	}
	r := it.req.For(c)
	q.mu.Lock()
	q.inflight++
	q.mu.Unlock()
	// state: 0 while AppendAsync runs, 1 once it returned, 2 when it failed the chat
	// before returning (the stream could not open: the plugin is not back).
	var state atomic.Int32
	c.AppendAsync(r, left, func(res *pb.AppendResult, err error) {
		defer q.settle() // after the chat is delivered or back in the queue
		switch {
		case err == nil:
			d.metrics.appended(time.Since(it.start))
			d.countReadFanout(r, res)
			d.complete(it.ctx, it.env, res, it.attempt > 0, it.done)
		case errors.Is(err, storage.ErrUnavailable):
			d.src.failed(c)
			if state.CompareAndSwap(0, 2) {
				return // again reports it, and the loop queues it again
			}
			it.attempt++
			q.add(it)
		default:
			d.finishErr(it.req, err, it.done)
		}
	})
	return state.CompareAndSwap(0, 1)
}
