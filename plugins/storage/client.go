package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	// MaxInflight is how many batches may await their result at once (default 16):
	// beyond that, new chats gather into the next batch. A batch is sent as soon as the
	// stream may (no timer); the plugin merges what reaches it during a commit.
	MaxInflight int
	// OnBatch, when set, is told the number of chats of each batch sent (metrics).
	OnBatch func(n int)
	// OnBatchDone, when set, is told the round trip of each answered batch: from its
	// send to its result (the plugin's commit included), which, against a chat's whole
	// time to be stored, shows how long chats queue before they are sent (metrics).
	OnBatchDone func(d time.Duration)
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 4 << 20
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 16
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
	type result struct {
		res *pb.AppendResult
		err error
	}
	ch := make(chan result, 1)
	c.AppendAsync(r, 0, func(res *pb.AppendResult, err error) { ch <- result{res, err} })
	select {
	case x := <-ch:
		return x.res, x.err
	case <-ctx.Done():
		return nil, fmt.Errorf("storage append: %w", ctx.Err())
	}
}

// AppendDone receives the outcome of AppendAsync: the result once the chat is durable, or
// an error. An error wrapping ErrUnavailable or context.DeadlineExceeded means the outcome is unknown
// (the chat may be stored: a resend with the same from and id is safe); one that wraps
// neither is the plugin's refusal of this chat (res.Error says why).
type AppendDone func(res *pb.AppendResult, err error)

// AppendAsync queues r on the shared write stream and returns at once; nobody waits for
// the plugin. done is called exactly once: from the stream's receiving goroutine when the
// plugin answers (so it must be short and must not block: hand long work to a pool), or
// from the caller's goroutine, before AppendAsync returns, when the stream cannot be
// opened. With timeout > 0, done gets an error wrapping context.DeadlineExceeded when no answer came in
// that time (checked every timeoutTick); a later answer is then dropped.
func (c *Client) AppendAsync(r *pb.AppendRequest, timeout time.Duration, done AppendDone) {
	ws, err := c.stream()
	if err != nil {
		done(nil, err)
		return
	}
	cl := &call{req: r, size: proto.Size(r), done: done}
	if timeout > 0 {
		cl.deadline = time.Now().Add(timeout).UnixNano()
	}
	ws.enqueue(cl)
}

// Append implements Backend: it queues the requests on the write stream in order and
// waits for all. A chat the plugin refused has its result's Error set; an error means
// the call failed (some of the chats may be stored: resending them is safe).
func (c *Client) Append(ctx context.Context, reqs []*pb.AppendRequest) ([]*pb.AppendResult, error) {
	type result struct {
		i   int
		res *pb.AppendResult
		err error
	}
	ch := make(chan result, len(reqs))
	for i, r := range reqs {
		c.AppendAsync(r, 0, func(res *pb.AppendResult, err error) { ch <- result{i, res, err} })
	}
	out := make([]*pb.AppendResult, len(reqs))
	for range reqs {
		select {
		case x := <-ch:
			if x.err != nil && (x.res == nil || x.res.Error == "") {
				return nil, x.err
			}
			out[x.i] = x.res
		case <-ctx.Done():
			return nil, fmt.Errorf("storage append: %w", ctx.Err())
		}
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
