package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Deliverer is the storage stage of the delivery seam: it stores each chat (the plugin
// assigns its per-conversation seq and gives every receiver an inbox entry, or, for a
// group chat to more than storage.read_fanout_members receivers and a plugin that
// declared read fan-out, stores it once for members to pull) and only then
// hands it, with its Seq, to the deliverer it wraps, so that the sender's ack (cmd 12)
// means "stored". Notices and kicks pass through unstored.
// A resend of a stored chat (same sender and id) is answered from the store and not
// delivered again. While storage is unavailable, Deliver fails with an error wrapping
// router.ErrUnavailable (the sender gets 10030).
type Deliverer struct {
	next    router.Deliverer
	src     source
	timeout time.Duration
	log     *slog.Logger
	metrics *metrics
	// readFanout is storage.read_fanout_members (0: always write fan-out).
	readFanout atomic.Int64
	noInline   bool // never deliver on the store's callback goroutine
	// order runs deliveries after the store's callback in each connection's order, on
	// the executor (SetExecutor; default: a goroutine each) when not inline.
	order strands
	// retries stores again, in order, chats whose plugin went away (order.go).
	retries retryQueue
	// seq numbers the chats queued by DeliverAsync, in order (for retries).
	seq atomic.Uint64
}

// readFanouter is a store connection that says whether its plugin does read fan-out
// (storage.Client).
type readFanouter interface{ ReadFanout() bool }

var _ readFanouter = (*storage.Client)(nil)

var _ router.AsyncDeliverer = (*Deliverer)(nil)

// NewDeliverer returns the storage stage in front of next, storing through s.
func NewDeliverer(s *Supervisor, next router.Deliverer) *Deliverer {
	d := &Deliverer{next: next, src: s, timeout: s.cfg.WriteTimeout, log: s.log, metrics: s.metrics}
	d.order.exec = func(f func()) { go f() }
	d.retries.d = d
	d.readFanout.Store(int64(s.cfg.ReadFanoutMembers))
	return d
}

// SetReadFanoutMembers sets storage.read_fanout_members (a reload): group chats to more
// receivers than n are stored by read fan-out; 0 turns it off.
func (d *Deliverer) SetReadFanoutMembers(n int) { d.readFanout.Store(int64(max(n, 0))) }

// retryWait is how long a chat waits for a plugin restart in progress.
const retryWait = 2 * time.Second

// inlineMax is the most receivers a stored chat may have for its delivery to run on the
// store's callback goroutine; larger fan-outs are handed to the executor.
const inlineMax = 64

// SetExecutor sets where the delivery of a stored chat runs once it is stored (the
// gateway's worker pool; default: a goroutine of its own) when it is not run on the
// store's callback goroutine: always when inline is false (the stage it wraps may wait on
// a network peer, as the cluster bus can), else for chats to more than inlineMax
// receivers. Set it before chats flow.
func (d *Deliverer) SetExecutor(exec func(func()), inline bool) {
	d.order.exec = exec
	d.noInline = !inline
}

// Deliver implements router.Deliverer: the caller's goroutine waits while the chat is
// stored.
func (d *Deliverer) Deliver(ctx context.Context, env router.Envelope) (router.Outcome, error) {
	if env.Kind != router.KindChat {
		return d.next.Deliver(ctx, env)
	}
	req, err := appendRequest(env, int(d.readFanout.Load()))
	if err != nil {
		return router.Outcome{}, err
	}
	return d.deliver(ctx, env, req, time.Now(), 0)
}

// DeliverAsync implements router.AsyncDeliverer: the chat is queued on the plugin's write
// stream and done is called from the store's callback once it is stored and queued to its
// receivers (or refused); the caller does not wait. The chats of one sending connection
// (env.SkipConn) are delivered in the order they were queued, also through a plugin
// crash (order.go): while the plugin is down or restarting they wait, in order, on the
// retry queue's goroutine.
func (d *Deliverer) DeliverAsync(ctx context.Context, env router.Envelope, done func(router.Outcome, error)) {
	if env.Kind != router.KindChat {
		done(d.next.Deliver(ctx, env))
		return
	}
	req, err := appendRequest(env, int(d.readFanout.Load()))
	if err != nil {
		done(router.Outcome{}, err)
		return
	}
	start := time.Now()
	seq := d.seq.Add(1)
	if d.retries.busy.Load() {
		// Chats failed with the plugin and are being stored again: this one goes behind.
		d.retries.add(retryItem{seq: seq, ctx: ctx, env: env, req: req, start: start, done: done})
		return
	}
	c, err := d.src.get(ctx, 0)
	if err != nil {
		d.retries.add(retryItem{seq: seq, ctx: ctx, env: env, req: req, start: start, done: done})
		return
	}
	r := req.For(c)
	c.AppendAsync(r, d.timeout, func(res *pb.AppendResult, err error) {
		switch {
		case err == nil:
			d.metrics.appended(time.Since(start))
			d.countReadFanout(r, res)
			d.complete(ctx, env, res, false, done)
		case errors.Is(err, storage.ErrUnavailable):
			// The plugin died with the chat in flight: store it again through the
			// restart, in order (a resend of the same chat is safe).
			d.src.failed(c)
			d.retries.add(retryItem{seq: seq, ctx: ctx, env: env, req: req, start: start, attempt: 1, done: done})
		default:
			d.finishErr(req, err, done)
		}
	})
}

// complete delivers a chat the plugin stored and answers done: on the store's callback
// goroutine for a small fan-out, else on the executor, in the sending connection's order.
func (d *Deliverer) complete(ctx context.Context, env router.Envelope, res *pb.AppendResult, retried bool, done func(router.Outcome, error)) {
	inline := !d.noInline && len(env.Receivers) <= inlineMax
	d.order.run(env.SkipConn, inline, func() { done(d.stored(ctx, env, res, retried), nil) })
}

// finishErr answers done with the plugin's refusal of req (or its timeout).
func (d *Deliverer) finishErr(req *appendReq, err error, done func(router.Outcome, error)) {
	d.metrics.failed(opAppend, err)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("store chat %s: %v: %w", req.Message.Id, err, router.ErrUnavailable)
	} else {
		err = fmt.Errorf("store chat %s: %w", req.Message.Id, err)
	}
	done(router.Outcome{}, err)
}

// countReadFanout counts a chat stored by read fan-out (not a resend's answer).
func (d *Deliverer) countReadFanout(r *pb.AppendRequest, res *pb.AppendResult) {
	if r.Message.ReadFanout && !res.Duplicate {
		d.metrics.readFannedOut()
	}
}

// deliver stores req (attempt > 0: an earlier attempt may have stored it), waiting,
// and delivers the stored chat.
func (d *Deliverer) deliver(ctx context.Context, env router.Envelope, req *appendReq, start time.Time, attempt int) (router.Outcome, error) {
	ctx, cancel := context.WithDeadline(ctx, start.Add(d.timeout))
	defer cancel()
	res, retried, err := d.store(ctx, req, attempt)
	if err != nil {
		d.metrics.failed(opAppend, err)
		return router.Outcome{}, err
	}
	d.metrics.appended(time.Since(start))
	return d.stored(ctx, env, res, retried), nil
}

// stored delivers a chat the plugin stored (res): a resend of a chat stored before
// (duplicate, and not this very chat retried) is answered from the store and not
// delivered again.
func (d *Deliverer) stored(ctx context.Context, env router.Envelope, res *pb.AppendResult, retried bool) router.Outcome {
	if res.Duplicate && !retried {
		// A resend of a stored chat: the same answer, no second delivery (receivers have
		// it, or have it in their inbox).
		return router.Outcome{Stored: true, Duplicate: true, Seq: res.Seq, CreateTime: res.CreateTime,
			ServerTime: res.ServerTime}
	}
	env.Seq = res.Seq // our copy: inner stages deliver the chat with its seq
	out, err := d.next.Deliver(ctx, env)
	if err != nil {
		// Stored: receivers get it from their inbox; the sender is acked.
		d.log.Warn("stored chat not delivered live", "id", env.Chat.ID, "err", err)
	}
	out.Stored, out.Seq, out.ServerTime = true, res.Seq, res.ServerTime
	return out
}

// store appends req, retrying through a plugin restart until ctx's deadline. retried
// reports that an earlier attempt may have stored it (so a duplicate answer is this very
// chat).
func (d *Deliverer) store(ctx context.Context, req *appendReq, attempt int) (res *pb.AppendResult, retried bool, err error) {
	for ; ; attempt++ {
		c, err := d.src.get(ctx, min(retryWait, d.timeout))
		if err == nil {
			r := req.For(c)
			res, err = c.AppendOne(ctx, r)
			if err == nil {
				d.countReadFanout(r, res)
				return res, attempt > 0, nil
			}
			if errors.Is(err, storage.ErrUnavailable) {
				d.src.failed(c)
			}
		}
		unavailable := errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
		if !unavailable {
			return nil, false, fmt.Errorf("store chat %s: %w", req.Message.Id, err)
		}
		if ctx.Err() != nil || attempt >= 3 {
			return nil, false, fmt.Errorf("store chat %s: %v: %w", req.Message.Id, err, router.ErrUnavailable)
		}
		select { // a moment for the supervisor to notice a dead plugin
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// appendReq is a chat to store: its request with receivers, or, for a large group, its
// read fan-out request and how to build the receivers for a plugin without read fan-out.
type appendReq struct {
	*pb.AppendRequest
	readFanout *pb.AppendRequest // set: a read fan-out chat (AppendRequest has no receivers yet)
	env        router.Envelope
}

// For returns the request to send to c: the read fan-out one when c's plugin does it,
// else the chat with its receivers (built on first need).
func (r *appendReq) For(c conn) *pb.AppendRequest {
	if r.readFanout == nil {
		return r.AppendRequest
	}
	if rf, ok := c.(readFanouter); ok && rf.ReadFanout() {
		return r.readFanout
	}
	if r.Receivers == nil {
		r.Receivers = groupReceivers(r.env.Receivers, r.Message.From)
	}
	return r.AppendRequest
}

// groupReceivers are the members that get an inbox entry: all but the sender.
func groupReceivers(members []string, from string) []string {
	out := make([]string, 0, len(members))
	for _, u := range members {
		if u != from {
			out = append(out, u)
		}
	}
	return out
}

// appendRequest turns a stamped chat into the plugin's request. A group chat to more
// receivers than readFanout (> 0) gets a read fan-out variant (Message.ReadFanout, no
// receivers), sent to plugins that do read fan-out.
func appendRequest(env router.Envelope, readFanout int) (*appendReq, error) {
	c := env.Chat
	m := &pb.Message{Id: string(c.ID), From: string(c.From), To: string(c.To), GroupId: string(c.GroupID),
		ChatType: int32(c.ChatType), MsgType: int32(c.MsgType), CreateTime: int64(c.CreateTime),
		ServerTime: time.Now().UnixMilli(), Content: c.Content}
	if len(c.Extras) > 0 && string(c.Extras) != "null" {
		m.Extras = c.Extras
	}
	req := &appendReq{AppendRequest: &pb.AppendRequest{Message: m}, env: env}
	switch c.ChatType {
	case packet.ChatTypeGroup:
		m.Conv = storage.GroupConv(m.GroupId)
		n := len(env.Receivers)
		if readFanout > 0 && n > readFanout && slices.Contains(env.Receivers, m.From) {
			n-- // the sender gets no entry
		}
		if readFanout > 0 && n > readFanout {
			rm := proto.Clone(m).(*pb.Message)
			rm.ReadFanout = true
			req.readFanout = &pb.AppendRequest{Message: rm}
			break
		}
		req.Receivers = groupReceivers(env.Receivers, m.From)
	case packet.ChatTypePrivate:
		m.Conv = storage.PrivateConv(m.From, m.To)
		if m.To != m.From {
			req.Receivers = []string{m.To}
		}
	default:
		return nil, fmt.Errorf("store chat %s: chatType %d is neither group nor private", c.ID, int64(c.ChatType))
	}
	return req, nil
}
