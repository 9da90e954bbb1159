package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// ClientOptions tune a Client's write stream. Zero values take the defaults.
type ClientOptions struct {
	// MaxBatch is the most chats sent in one batch (default 512).
	MaxBatch int
	// MaxBatchBytes bounds a batch's encoded size (default 4 MiB; a single larger chat
	// still goes, alone).
	MaxBatchBytes int
	// MaxInflight is how many batches may await their result at once (default 4): while
	// they do, new chats gather into the next batch.
	MaxInflight int
	// OnBatch, when set, is told the number of chats of each batch sent (metrics).
	OnBatch func(n int)
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 4 << 20
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 4
	}
	return o
}

// Client is the host's side of a storage plugin. It implements Backend: Append calls from
// many goroutines are gathered into batches on one gRPC stream; the other methods are
// unary calls. Errors from the plugin come back as the SDK's errors (ErrNotFound, ...);
// a broken connection as ErrUnavailable.
type Client struct {
	rpc  pb.StorageClient
	opts ClientOptions

	mu     sync.Mutex
	ws     *writeStream
	closed bool

	shared     atomic.Bool // the plugin's last Open answered shared
	readFanout atomic.Bool // the plugin's last Open answered read_fanout
}

var _ Backend = (*Client)(nil)

// NewClient returns a Client over a connection to a plugin.
func NewClient(rpc pb.StorageClient, opts ClientOptions) *Client {
	return &Client{rpc: rpc, opts: opts.withDefaults()}
}

// CallOptions are the gRPC call options of a host: room for large batches.
func CallOptions() []grpc.CallOption {
	return []grpc.CallOption{grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)}
}

// Open implements Backend. The answer names the plugin and says whether its store is
// shared (see Shared).
func (c *Client) Open(ctx context.Context, r *pb.OpenRequest) (*pb.OpenResponse, error) {
	res, err := c.rpc.Open(ctx, r)
	if err != nil {
		return nil, fromStatus("open", err)
	}
	c.shared.Store(res.GetShared())
	c.readFanout.Store(res.GetReadFanout())
	return res, nil
}

// ReadFanout reports whether the plugin declared, in its answer to the last Open, that
// it stores group chats flagged Message.read_fanout once and pulls them into members'
// inboxes on Inbox (see the package doc). False before Open and for
// plugins that do not declare it: the host then sends every group chat with its receivers.
func (c *Client) ReadFanout() bool { return c.readFanout.Load() }

// Shared reports whether the plugin declared, in its answer to the last Open, that its
// store is shared by every plugin process opened with the same configuration and keeps
// the contract with several of them writing at once: what a cluster of gateways needs.
// It is false before Open, and for plugins (bolt, or ones built before the flag) that
// do not declare it.
func (c *Client) Shared() bool { return c.shared.Load() }

// AppendOne stores one chat through the shared write stream and returns its result once
// it is durable. An error wrapping ErrUnavailable means the outcome is unknown: the chat
// may or may not be stored (a resend with the same from and id is safe).
func (c *Client) AppendOne(ctx context.Context, r *pb.AppendRequest) (*pb.AppendResult, error) {
	ws, cl, err := c.enqueue(ctx, r)
	if err != nil {
		return nil, err
	}
	return ws.wait(ctx, cl)
}

// enqueue queues r on the write stream.
func (c *Client) enqueue(ctx context.Context, r *pb.AppendRequest) (*writeStream, *call, error) {
	ws, err := c.stream()
	if err != nil {
		return nil, nil, err
	}
	cl := &call{req: r, size: proto.Size(r), done: make(chan struct{})}
	select {
	case ws.queue <- cl:
		return ws, cl, nil
	case <-ws.done:
		return nil, nil, ws.err
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("storage append: %w", ctx.Err())
	}
}

// wait waits for the result of a queued call.
func (ws *writeStream) wait(ctx context.Context, cl *call) (*pb.AppendResult, error) {
	select {
	case <-cl.done:
		return cl.res, cl.err
	case <-ws.done:
		select {
		case <-cl.done:
			return cl.res, cl.err
		default:
			return nil, ws.err
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("storage append: %w", ctx.Err())
	}
}

// Append implements Backend: it queues the requests on the write stream in order and
// waits for all. A chat the plugin refused has its result's Error set; an error means
// the call failed (some of the chats may be stored: resending them is safe).
func (c *Client) Append(ctx context.Context, reqs []*pb.AppendRequest) ([]*pb.AppendResult, error) {
	type queued struct {
		ws *writeStream
		cl *call
	}
	q := make([]queued, 0, len(reqs))
	for _, r := range reqs {
		ws, cl, err := c.enqueue(ctx, r)
		if err != nil {
			return nil, err
		}
		q = append(q, queued{ws, cl})
	}
	out := make([]*pb.AppendResult, len(reqs))
	for i, x := range q {
		res, err := x.ws.wait(ctx, x.cl)
		if err != nil && (res == nil || res.Error == "") {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

// stream returns the write stream, opening one when there is none or it broke.
func (c *Client) stream() (*writeStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("storage append: client closed: %w", ErrUnavailable)
	}
	if c.ws != nil && !c.ws.broken() {
		return c.ws, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.rpc.Append(ctx, CallOptions()...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("storage append: open stream: %v: %w", err, ErrUnavailable)
	}
	c.ws = newWriteStream(st, cancel, c.opts)
	return c.ws, nil
}

// Close tears down the write stream; calls waiting on it fail with ErrUnavailable. It
// does not stop the plugin process (the host does that).
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.ws != nil {
		c.ws.fail(errors.New("client closed"))
	}
	return nil
}

// Inbox implements Backend.
func (c *Client) Inbox(ctx context.Context, r *pb.InboxRequest) (*pb.InboxResponse, error) {
	res, err := c.rpc.Inbox(ctx, r, CallOptions()...)
	return res, fromStatus("inbox", err)
}

// Confirm implements Backend.
func (c *Client) Confirm(ctx context.Context, r *pb.ConfirmRequest) (*pb.ConfirmResponse, error) {
	res, err := c.rpc.Confirm(ctx, r)
	return res, fromStatus("confirm", err)
}

// History implements Backend.
func (c *Client) History(ctx context.Context, r *pb.HistoryRequest) (*pb.HistoryResponse, error) {
	res, err := c.rpc.History(ctx, r, CallOptions()...)
	return res, fromStatus("history", err)
}

// Recall implements Backend.
func (c *Client) Recall(ctx context.Context, r *pb.RecallRequest) (*pb.RecallResponse, error) {
	res, err := c.rpc.Recall(ctx, r)
	return res, fromStatus("recall", err)
}

// JoinGroup implements Backend.
func (c *Client) JoinGroup(ctx context.Context, r *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	res, err := c.rpc.JoinGroup(ctx, r)
	return res, fromStatus("join group", err)
}

// LeaveGroup implements Backend.
func (c *Client) LeaveGroup(ctx context.Context, r *pb.LeaveGroupRequest) (*pb.LeaveGroupResponse, error) {
	res, err := c.rpc.LeaveGroup(ctx, r)
	return res, fromStatus("leave group", err)
}

// ListGroups implements Backend.
func (c *Client) ListGroups(ctx context.Context, r *pb.ListRequest) (*pb.ListGroupsResponse, error) {
	res, err := c.rpc.ListGroups(ctx, r, CallOptions()...)
	return res, fromStatus("list groups", err)
}

// PutUser implements Backend.
func (c *Client) PutUser(ctx context.Context, r *pb.PutUserRequest) (*pb.PutUserResponse, error) {
	res, err := c.rpc.PutUser(ctx, r)
	return res, fromStatus("put user", err)
}

// ListUsers implements Backend.
func (c *Client) ListUsers(ctx context.Context, r *pb.ListRequest) (*pb.ListUsersResponse, error) {
	res, err := c.rpc.ListUsers(ctx, r, CallOptions()...)
	return res, fromStatus("list users", err)
}

// call is one chat waiting for its result.
type call struct {
	req  *pb.AppendRequest
	size int
	res  *pb.AppendResult
	err  error
	done chan struct{}
}

func (c *call) finish(res *pb.AppendResult, err error) {
	c.res, c.err = res, err
	close(c.done)
}

// batch is a group of calls sent as one AppendBatch.
type batch struct {
	id    uint64
	calls []*call
}

// writeStream is one Append stream with its sender and receiver goroutines.
type writeStream struct {
	st     grpc.BidiStreamingClient[pb.AppendBatch, pb.AppendBatchResult]
	cancel context.CancelFunc
	opts   ClientOptions

	queue chan *call    // chats waiting to be batched
	slots chan struct{} // one token per batch in flight
	fifo  chan *batch   // batches in flight, in send order
	done  chan struct{} // closed when the stream broke
	once  sync.Once
	err   error // set before done is closed
	isBad atomic.Bool
}

func newWriteStream(st grpc.BidiStreamingClient[pb.AppendBatch, pb.AppendBatchResult], cancel context.CancelFunc, o ClientOptions) *writeStream {
	ws := &writeStream{
		st: st, cancel: cancel, opts: o,
		queue: make(chan *call, 4*o.MaxBatch),
		slots: make(chan struct{}, o.MaxInflight),
		fifo:  make(chan *batch, o.MaxInflight),
		done:  make(chan struct{}),
	}
	go ws.send()
	go ws.recv()
	return ws
}

func (ws *writeStream) broken() bool { return ws.isBad.Load() }

// fail breaks the stream: every call in flight or queued fails with ErrUnavailable.
func (ws *writeStream) fail(cause error) {
	ws.once.Do(func() {
		ws.err = fmt.Errorf("storage append: stream broken: %v: %w", cause, ErrUnavailable)
		ws.isBad.Store(true)
		close(ws.done)
		ws.cancel()
	})
	for {
		select {
		case b := <-ws.fifo:
			for _, c := range b.calls {
				c.finish(nil, ws.err)
			}
		case c := <-ws.queue:
			c.finish(nil, ws.err)
		default:
			return
		}
	}
}

// send gathers queued calls into batches and sends them, at most MaxInflight at a time.
func (ws *writeStream) send() {
	var id uint64
	for {
		var first *call
		select {
		case first = <-ws.queue:
		case <-ws.done:
			return
		}
		select {
		case ws.slots <- struct{}{}:
		case <-ws.done:
			first.finish(nil, ws.err)
			ws.fail(nil)
			return
		}
		// While waiting for a slot more calls queued: take them along.
		b := &batch{calls: []*call{first}}
		size := first.size
	gather:
		for len(b.calls) < ws.opts.MaxBatch {
			select {
			case c := <-ws.queue:
				if size+c.size > ws.opts.MaxBatchBytes {
					// Too big to join: it opens the next batch.
					ws.flush(&id, b)
					b, size = &batch{calls: []*call{c}}, c.size
					select {
					case ws.slots <- struct{}{}:
					case <-ws.done:
						c.finish(nil, ws.err)
						ws.fail(nil)
						return
					}
					continue
				}
				b.calls = append(b.calls, c)
				size += c.size
			default:
				break gather
			}
		}
		if !ws.flush(&id, b) {
			return
		}
	}
}

// flush sends batch b; false when the stream broke.
func (ws *writeStream) flush(id *uint64, b *batch) bool {
	*id++
	b.id = *id
	msg := &pb.AppendBatch{Batch: b.id, Requests: make([]*pb.AppendRequest, len(b.calls))}
	for i, c := range b.calls {
		msg.Requests[i] = c.req
	}
	ws.fifo <- b // cannot block: a slot is held for it
	if ws.opts.OnBatch != nil {
		ws.opts.OnBatch(len(b.calls))
	}
	if err := ws.st.Send(msg); err != nil {
		ws.fail(err)
		return false
	}
	return true
}

// recv hands results to the calls of the batches in flight.
func (ws *writeStream) recv() {
	for {
		res, err := ws.st.Recv()
		if err != nil {
			ws.fail(err)
			return
		}
		var b *batch
		select {
		case b = <-ws.fifo:
		default:
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
		<-ws.slots
	}
}
