package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Deliverer is the storage stage of the delivery seam: it stores each chat (the plugin
// assigns its per-conversation seq and gives every receiver an inbox entry) and only then
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
}

var _ router.Deliverer = (*Deliverer)(nil)

// NewDeliverer returns the storage stage in front of next, storing through s.
func NewDeliverer(s *Supervisor, next router.Deliverer) *Deliverer {
	return &Deliverer{next: next, src: s, timeout: s.cfg.WriteTimeout, log: s.log, metrics: s.metrics}
}

// retryWait is how long a chat waits for a plugin restart in progress.
const retryWait = 2 * time.Second

// Deliver implements router.Deliverer.
func (d *Deliverer) Deliver(ctx context.Context, env router.Envelope) (router.Outcome, error) {
	if env.Kind != router.KindChat {
		return d.next.Deliver(ctx, env)
	}
	req, err := appendRequest(env)
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
func (d *Deliverer) store(ctx context.Context, req *pb.AppendRequest) (res *pb.AppendResult, retried bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c, err := d.src.get(ctx, min(retryWait, d.timeout))
		if err == nil {
			res, err = c.AppendOne(ctx, req)
			if err == nil {
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

// appendRequest turns a stamped chat into the plugin's request.
func appendRequest(env router.Envelope) (*pb.AppendRequest, error) {
	c := env.Chat
	m := &pb.Message{Id: string(c.ID), From: string(c.From), To: string(c.To), GroupId: string(c.GroupID),
		ChatType: int32(c.ChatType), MsgType: int32(c.MsgType), CreateTime: int64(c.CreateTime),
		ServerTime: time.Now().UnixMilli(), Content: c.Content}
	if len(c.Extras) > 0 && string(c.Extras) != "null" {
		m.Extras = c.Extras
	}
	req := &pb.AppendRequest{Message: m}
	switch c.ChatType {
	case packet.ChatTypeGroup:
		m.Conv = storage.GroupConv(m.GroupId)
		req.Receivers = make([]string, 0, len(env.Receivers))
		for _, u := range env.Receivers {
			if u != m.From {
				req.Receivers = append(req.Receivers, u)
			}
		}
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
