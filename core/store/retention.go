package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Retention and erasure: the Janitor removes expired messages in the background, in
// bounded batches (docs/storage.md#retention-and-erasure); Erase removes one user's data.

// batchPause is the janitor's pause between two batches, so that a backlog of expired
// messages does not hold the store's writer for long at a time.
const batchPause = 20 * time.Millisecond

// retentionCallTimeout bounds one Expire or EraseUser call.
const retentionCallTimeout = time.Minute

// Kinds of timgw_storage_expired_total.
var retentionKinds = []struct {
	label    string
	chatType int32
	period   func(config.Retention) time.Duration
}{
	{"private", storage.ChatTypePrivate, func(r config.Retention) time.Duration { return r.Private }},
	{"group", storage.ChatTypeGroup, func(r config.Retention) time.Duration { return r.Group }},
}

// JanitorOptions configure a Janitor.
type JanitorOptions struct {
	// Retention returns the current storage.retention section (read before every pass,
	// so that a reload applies at the next one).
	Retention func() config.Retention
	// Logger logs passes that removed something, and failures.
	Logger *slog.Logger
	// Registerer, when set, gets timgw_storage_expired_total{kind}.
	Registerer prometheus.Registerer
}

// Janitor removes messages older than their conversation kind's retention period, every
// interval, by calling the plugin's Expire with at most batch messages at a time.
type Janitor struct {
	src     source
	opts    JanitorOptions
	clock   func() time.Time
	expired *prometheus.CounterVec // nil: not counted

	warnOnce  sync.Once
	startOnce sync.Once
	started   atomic.Bool
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// NewJanitor returns a janitor of the supervised store; Start runs it.
func NewJanitor(s *Supervisor, o JanitorOptions) (*Janitor, error) {
	return newJanitor(s, o)
}

func newJanitor(src source, o JanitorOptions) (*Janitor, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	j := &Janitor{src: src, opts: o, clock: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if o.Registerer != nil {
		j.expired = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timgw_storage_expired_total",
			Help: "Messages removed by storage.retention, by kind of conversation."}, []string{"kind"})
		if err := o.Registerer.Register(j.expired); err != nil {
			return nil, fmt.Errorf("storage retention metrics: %w", err)
		}
		for _, k := range retentionKinds {
			j.expired.WithLabelValues(k.label)
		}
	}
	return j, nil
}

// Start runs the janitor in the background until Stop.
func (j *Janitor) Start() {
	j.startOnce.Do(func() {
		j.started.Store(true)
		go j.run()
	})
}

// Stop ends the janitor (a batch in progress is cancelled) and waits for it.
func (j *Janitor) Stop() {
	j.stopOnce.Do(func() { close(j.stop) })
	j.startOnce.Do(func() {}) // from now on Start does nothing
	if j.started.Load() {
		<-j.done
	}
}

func (j *Janitor) run() {
	defer close(j.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-j.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		r := j.opts.Retention().Resolved()
		select {
		case <-j.stop:
			return
		case <-time.After(r.Interval):
		}
		if _, err := j.Pass(ctx); err != nil && ctx.Err() == nil {
			j.opts.Logger.Warn("storage retention: pass failed (retried at the next interval)", "err", err)
		}
	}
}

// Pass removes every message due now, batch by batch, and returns how many it removed
// per kind ("private", "group"). A plugin without retention (ErrUnsupported) is logged
// once and removes nothing.
func (j *Janitor) Pass(ctx context.Context) (map[string]int64, error) {
	r := j.opts.Retention().Resolved()
	removed := map[string]int64{}
	for _, k := range retentionKinds {
		period := k.period(r)
		if period <= 0 {
			continue
		}
		before := j.clock().Add(-period).UnixMilli()
		for {
			res, err := j.expire(ctx, &pb.ExpireRequest{ChatType: k.chatType, BeforeMs: before, Limit: int32(r.Batch)})
			if errors.Is(err, storage.ErrUnsupported) {
				j.warnOnce.Do(func() {
					j.opts.Logger.Warn("storage retention: the storage plugin does not implement Expire: messages are kept")
				})
				return removed, nil
			}
			if err != nil {
				return removed, fmt.Errorf("expire %s messages before %d: %w", k.label, before, err)
			}
			removed[k.label] += res.Removed
			if j.expired != nil {
				j.expired.WithLabelValues(k.label).Add(float64(res.Removed))
			}
			if !res.More {
				break
			}
			select {
			case <-ctx.Done():
				return removed, ctx.Err()
			case <-time.After(batchPause):
			}
		}
		if removed[k.label] > 0 {
			j.opts.Logger.Info("storage retention: expired messages removed", "kind", k.label, "removed", removed[k.label],
				"older_than", period)
		}
	}
	return removed, nil
}

// expire makes one bounded Expire call.
func (j *Janitor) expire(ctx context.Context, req *pb.ExpireRequest) (*pb.ExpireResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, retentionCallTimeout)
	defer cancel()
	c, err := j.src.get(ctx, retryWait)
	if err != nil {
		return nil, err
	}
	rt, ok := c.(storage.Retainer)
	if !ok {
		return nil, storage.ErrUnsupported
	}
	res, err := rt.Expire(ctx, req)
	if errors.Is(err, storage.ErrUnavailable) {
		j.src.failed(c)
	}
	return res, err
}

// Erased is what an erasure removed.
type Erased struct {
	Messages      int64 `json:"messages"`      // messages the user sent, and of the user's private conversations
	Inbox         int64 `json:"inbox"`         // offline entries (the user's and others')
	Conversations int64 `json:"conversations"` // private conversations of the user
	Groups        int64 `json:"groups"`        // group memberships
}

// Erasable reports whether Erase can run now: nil, ErrUnsupported when the plugin does
// not implement erasure, or the error of getting the plugin (storage down). It lets a
// caller refuse before doing anything else an erasure does.
func (s *Service) Erasable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, retentionCallTimeout)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	if _, ok := c.(storage.Retainer); !ok {
		return storage.ErrUnsupported
	}
	return nil
}

// Erase removes user's stored data (right to erasure): every message the user sent,
// every private conversation of the user, the user's inbox, cursors, record and group
// memberships. ErrUnsupported when the plugin does not implement it.
func (s *Service) Erase(ctx context.Context, user string) (Erased, error) {
	if user == "" {
		return Erased{}, fmt.Errorf("erase: empty user: %w", ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, retentionCallTimeout)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return Erased{}, err
	}
	rt, ok := c.(storage.Retainer)
	if !ok {
		return Erased{}, storage.ErrUnsupported
	}
	res, err := rt.EraseUser(ctx, &pb.EraseUserRequest{User: user})
	if err != nil {
		if errors.Is(err, storage.ErrUnavailable) {
			s.src.failed(c)
		}
		return Erased{}, fmt.Errorf("erase %s: %w", user, err)
	}
	return Erased{Messages: res.Messages, Inbox: res.Inbox, Conversations: res.Conversations, Groups: res.Groups}, nil
}
