package storage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// timeoutTick is how often a write stream looks for calls past their deadline.
const timeoutTick = 50 * time.Millisecond

// call is one chat waiting for its result.
type call struct {
	req      *pb.AppendRequest
	size     int
	deadline int64 // unix ns; 0: none
	done     AppendDone
	finished atomic.Bool
}

// finish hands the outcome to the caller, once: a result that comes after the call timed
// out (or the other way round) is dropped.
func (c *call) finish(res *pb.AppendResult, err error) {
	if c.finished.CompareAndSwap(false, true) {
		c.done(res, err)
	}
}

// batch is a group of calls sent as one AppendBatch.
type batch struct {
	id    uint64
	sent  time.Time
	calls []*call
}

// writeStream is one Append stream: callers queue chats (enqueue never blocks), a sender
// goroutine sends whatever is queued as one batch as soon as it may, and a receiver
// goroutine completes the calls of each answered batch. There is no batch timer: at light
// load a chat is sent alone at once; under load chats gather while earlier batches are on
// their way, and the plugin merges the batches that reach it during a commit (one fsync
// for all of them).
type writeStream struct {
	st     grpc.BidiStreamingClient[pb.AppendBatch, pb.AppendBatchResult]
	cancel context.CancelFunc
	opts   ClientOptions

	mu       sync.Mutex
	queue    []*call  // waiting to be sent, in order
	inflight []*batch // sent, awaiting their result, in send order
	broke    bool

	wake  chan struct{} // cap 1: the sender has work
	room  chan struct{} // cap 1: a batch was answered (the sender may be waiting for room)
	done  chan struct{} // closed when the stream broke
	once  sync.Once
	err   error // set before done is closed
	isBad atomic.Bool
}

func newWriteStream(st grpc.BidiStreamingClient[pb.AppendBatch, pb.AppendBatchResult], cancel context.CancelFunc, o ClientOptions) *writeStream {
	ws := &writeStream{
		st: st, cancel: cancel, opts: o,
		wake: make(chan struct{}, 1),
		room: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go ws.send()
	go ws.recv()
	go ws.sweep()
	return ws
}

func (ws *writeStream) broken() bool { return ws.isBad.Load() }

// enqueue queues cl for the sender; on a broken stream it fails cl at once.
func (ws *writeStream) enqueue(cl *call) {
	ws.mu.Lock()
	if ws.broke {
		ws.mu.Unlock()
		cl.finish(nil, ws.err)
		return
	}
	ws.queue = append(ws.queue, cl)
	ws.mu.Unlock()
	select {
	case ws.wake <- struct{}{}:
	default:
	}
}

// fail breaks the stream: every call in flight or queued fails with ErrUnavailable.
func (ws *writeStream) fail(cause error) {
	ws.once.Do(func() {
		ws.err = fmt.Errorf("storage append: stream broken: %v: %w", cause, ErrUnavailable)
		ws.isBad.Store(true)
		close(ws.done)
		ws.cancel()
	})
	ws.mu.Lock()
	ws.broke = true
	queue, inflight := ws.queue, ws.inflight
	ws.queue, ws.inflight = nil, nil
	ws.mu.Unlock()
	for _, b := range inflight {
		for _, c := range b.calls {
			c.finish(nil, ws.err)
		}
	}
	for _, c := range queue {
		c.finish(nil, ws.err)
	}
}

// send sends what is queued, at most MaxInflight batches awaiting their result at once.
func (ws *writeStream) send() {
	var id uint64
	for {
		select {
		case <-ws.wake:
		case <-ws.done:
			return
		}
		for {
			ws.mu.Lock()
			if ws.broke || len(ws.queue) == 0 {
				ws.mu.Unlock()
				break
			}
			if len(ws.inflight) >= ws.opts.MaxInflight {
				ws.mu.Unlock()
				select {
				case <-ws.room:
					continue
				case <-ws.done:
					return
				}
			}
			b := ws.take()
			id++
			b.id = id
			if ws.opts.OnBatchDone != nil {
				b.sent = time.Now()
			}
			ws.inflight = append(ws.inflight, b)
			ws.mu.Unlock()
			msg := &pb.AppendBatch{Batch: b.id, Requests: make([]*pb.AppendRequest, len(b.calls))}
			for i, c := range b.calls {
				msg.Requests[i] = c.req
			}
			if ws.opts.OnBatch != nil {
				ws.opts.OnBatch(len(b.calls))
			}
			if err := ws.st.Send(msg); err != nil {
				ws.fail(err)
				return
			}
		}
	}
}

// take (mu held) cuts the next batch off the queue: up to MaxBatch calls and
// MaxBatchBytes (a single larger chat goes alone).
func (ws *writeStream) take() *batch {
	n, size := 0, 0
	for n < len(ws.queue) && n < ws.opts.MaxBatch {
		s := ws.queue[n].size
		if n > 0 && size+s > ws.opts.MaxBatchBytes {
			break
		}
		size += s
		n++
	}
	b := &batch{calls: make([]*call, n)}
	copy(b.calls, ws.queue[:n])
	rest := copy(ws.queue, ws.queue[n:])
	clear(ws.queue[rest:])
	ws.queue = ws.queue[:rest]
	return b
}

// recv hands results to the calls of the batches in flight.
func (ws *writeStream) recv() {
	for {
		res, err := ws.st.Recv()
		if err != nil {
			ws.fail(err)
			return
		}
		ws.mu.Lock()
		var b *batch
		if len(ws.inflight) > 0 {
			b = ws.inflight[0]
			ws.inflight[0] = nil
			ws.inflight = ws.inflight[1:]
		}
		ws.mu.Unlock()
		select {
		case ws.room <- struct{}{}:
		default:
		}
		if b != nil && ws.opts.OnBatchDone != nil {
			ws.opts.OnBatchDone(time.Since(b.sent))
		}
		if b == nil || b.id != res.Batch || (res.Error == "" && len(res.Results) != len(b.calls)) {
			if b != nil {
				for _, c := range b.calls {
					c.finish(nil, fmt.Errorf("storage append: plugin answered batch %d out of order: %w", res.Batch, ErrUnavailable))
				}
			}
			ws.fail(fmt.Errorf("result for batch %d does not match what was sent", res.Batch))
			return
		}
		for i, c := range b.calls {
			switch {
			case res.Error != "":
				c.finish(nil, fmt.Errorf("storage append: %s: %w", res.Error, ErrUnavailable))
			case res.Results[i].Error != "":
				c.finish(res.Results[i], fmt.Errorf("storage append: %s", res.Results[i].Error))
			default:
				c.finish(res.Results[i], nil)
			}
		}
	}
}

// sweep fails the calls whose deadline passed without an answer.
func (ws *writeStream) sweep() {
	t := time.NewTicker(timeoutTick)
	defer t.Stop()
	var late []*call
	for {
		select {
		case <-t.C:
		case <-ws.done:
			return
		}
		now := time.Now().UnixNano()
		expired := func(c *call) bool { return c.deadline != 0 && c.deadline <= now && !c.finished.Load() }
		ws.mu.Lock()
		for _, b := range ws.inflight {
			for _, c := range b.calls {
				if expired(c) {
					late = append(late, c)
				}
			}
		}
		for _, c := range ws.queue {
			if expired(c) {
				late = append(late, c)
			}
		}
		ws.mu.Unlock()
		for i, c := range late {
			c.finish(nil, fmt.Errorf("storage append: no answer from the plugin in time: %w", context.DeadlineExceeded))
			late[i] = nil
		}
		late = late[:0]
	}
}
