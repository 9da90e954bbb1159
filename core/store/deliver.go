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
}

// readFanouter is a store connection that says whether its plugin does read fan-out
// (storage.Client).
type readFanouter interface{ ReadFanout() bool }

var _ readFanouter = (*storage.Client)(nil)

var _ router.Deliverer = (*Deliverer)(nil)

// NewDeliverer returns the storage stage in front of next, storing through s.
func NewDeliverer(s *Supervisor, next router.Deliverer) *Deliverer {
	d := &Deliverer{next: next, src: s, timeout: s.cfg.WriteTimeout, log: s.log, metrics: s.metrics}
	d.readFanout.Store(int64(s.cfg.ReadFanoutMembers))
	return d
}

// SetReadFanoutMembers sets storage.read_fanout_members (a reload): group chats to more
// receivers than n are stored by read fan-out; 0 turns it off.
func (d *Deliverer) SetReadFanoutMembers(n int) { d.readFanout.Store(int64(max(n, 0))) }

// retryWait is how long a chat waits for a plugin restart in progress.
const retryWait = 2 * time.Second

// Deliver implements router.Deliverer.
func (d *Deliverer) Deliver(ctx context.Context, env router.Envelope) (router.Outcome, error) {
	if env.Kind != router.KindChat {
		return d.next.Deliver(ctx, env)
	}
	req, err := appendRequest(env, int(d.readFanout.Load()))
	if err != nil {
		return router.Outcome{}, err
	}
	start := time.Now()
	res, retried, err := d.store(ctx, req)
	if err != nil {
		d.metrics.failed(opAppend, err)
		return router.Outcome{}, err
	}
	d.metrics.appended(time.Since(start))
	if res.Duplicate && !retried {
		// A resend of a stored chat: the same answer, no second delivery (receivers have
		// it, or have it in their inbox).
		return router.Outcome{Stored: true, Duplicate: true, Seq: res.Seq, CreateTime: res.CreateTime,
			ServerTime: res.ServerTime}, nil
	}
	env.Seq = res.Seq // our copy: inner stages deliver the chat with its seq
	out, err := d.next.Deliver(ctx, env)
	if err != nil {
		// Stored: receivers get it from their inbox; the sender is acked.
		d.log.Warn("stored chat not delivered live", "id", env.Chat.ID, "err", err)
	}
	out.Stored, out.Seq, out.ServerTime = true, res.Seq, res.ServerTime
	return out, nil
}

// store appends req, retrying through a plugin restart until the write timeout.
// retried reports that an earlier attempt may have stored it (so a duplicate answer is
// this very chat).
func (d *Deliverer) store(ctx context.Context, req *appendReq) (res *pb.AppendResult, retried bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c, err := d.src.get(ctx, min(retryWait, d.timeout))
		if err == nil {
			r := req.For(c)
			res, err = c.AppendOne(ctx, r)
			if err == nil {
				if r.Message.ReadFanout && !res.Duplicate {
					d.metrics.readFannedOut()
				}
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
