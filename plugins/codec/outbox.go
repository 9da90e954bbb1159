package codec

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// BatchOptions tune how frames are batched into stream messages, both ways.
type BatchOptions struct {
	// MaxBytes ends a batch: a batch that reaches it is sent at once (default 256 KiB).
	// A single frame larger than MaxBytes travels alone.
	MaxBytes int
	// Linger is how long a sender that woke up with less than MaxBytes waits for more
	// frames before sending (default 0: send as soon as the sender is free, which
	// batches naturally under load and adds no latency when idle).
	Linger time.Duration
	// MaxPending bounds the bytes waiting to be sent (default 32 MiB). The host refuses
	// frames beyond it (ErrBacklog, the connection is closed); the plugin blocks.
	MaxPending int
}

func (o BatchOptions) withDefaults() BatchOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 10
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 32 << 20
	}
	if o.MaxPending < 2*o.MaxBytes {
		o.MaxPending = 2 * o.MaxBytes
	}
	return o
}

// ErrBacklog is returned when frames cannot be queued because the other side does not
// keep up.
var ErrBacklog = errors.New("codec plugin stream backlog full")

// ErrStreamClosed is returned when frames are queued to a stream that has ended.
var ErrStreamClosed = errors.New("codec plugin stream closed")

// outbox queues encoded frames and hands them to one sender in batches. Frames are
// appended in place into the current batch buffer: no allocation per frame. A batch
// buffer, once handed to the sender, is never written again (gRPC may keep it after
// SendMsg returns).
type outbox struct {
	opts  BatchOptions
	block bool // wait for room instead of failing with ErrBacklog

	mu      sync.Mutex
	room    *sync.Cond
	full    [][]byte // batches that reached MaxBytes, oldest first
	cur     []byte   // the batch being filled
	pending int
	last    int // size of the last batch taken, to size the next buffer
	closed  error
	wake    chan struct{} // cap 1: something to send
}

func newOutbox(opts BatchOptions, block bool) *outbox {
	o := &outbox{opts: opts.withDefaults(), block: block, wake: make(chan struct{}, 1)}
	o.room = sync.NewCond(&o.mu)
	return o
}

// add appends one frame of at most size bytes, written by enc.
func (o *outbox) add(size int, enc func([]byte) []byte) error {
	o.mu.Lock()
	for o.closed == nil && o.pending+size > o.opts.MaxPending && o.pending > 0 {
		if !o.block {
			p := o.pending
			o.mu.Unlock()
			return fmt.Errorf("%w: %d bytes waiting", ErrBacklog, p)
		}
		o.room.Wait()
	}
	if o.closed != nil {
		err := o.closed
		o.mu.Unlock()
		return err
	}
	if o.cur == nil {
		o.cur = make([]byte, 0, min(max(size, o.last+o.last/4, 4096), o.opts.MaxBytes+size))
	}
	before := len(o.cur)
	o.cur = enc(o.cur)
	o.pending += len(o.cur) - before
	if len(o.cur) >= o.opts.MaxBytes {
		o.full = append(o.full, o.cur)
		o.cur = nil
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// take removes the oldest batch, or nil when nothing waits.
func (o *outbox) take() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b []byte
	switch {
	case len(o.full) > 0:
		b = o.full[0]
		o.full[0] = nil
		o.full = o.full[1:]
	case len(o.cur) > 0:
		b, o.cur = o.cur, nil
	default:
		return nil
	}
	o.pending -= len(b)
	o.last = len(b)
	o.room.Broadcast()
	return b
}

// ready reports whether a full batch waits.
func (o *outbox) ready() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.full) > 0
}

// close fails later adds with err and wakes blocked ones and the sender.
func (o *outbox) close(err error) {
	o.mu.Lock()
	if o.closed == nil {
		o.closed = err
	}
	o.room.Broadcast()
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) isClosed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed != nil
}

// run sends batches with send until send fails or the outbox is closed and drained.
func (o *outbox) run(send func([]byte) error) error {
	var timer *time.Timer
	for {
		<-o.wake
		if o.opts.Linger > 0 && !o.ready() && !o.isClosed() {
			if timer == nil {
				timer = time.NewTimer(o.opts.Linger)
			} else {
				timer.Reset(o.opts.Linger)
			}
		linger:
			for {
				select {
				case <-timer.C:
					break linger
				case <-o.wake:
					if o.ready() || o.isClosed() {
						timer.Stop()
						break linger
					}
				}
			}
		}
		for b := o.take(); b != nil; b = o.take() {
			if err := send(b); err != nil {
				o.close(err)
				return err
			}
		}
		o.mu.Lock()
		closed, empty := o.closed, len(o.full) == 0 && len(o.cur) == 0
		o.mu.Unlock()
		if closed != nil && empty {
			return closed
		}
		if !empty { // more arrived after the drain: go round once more
			select {
			case o.wake <- struct{}{}:
			default:
			}
		}
	}
}
