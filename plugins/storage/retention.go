package storage

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Retention and erasure: the optional part of the contract. A Backend that also
// implements Retainer serves Expire and EraseUser; one that does not answers them with
// ErrUnsupported (gRPC Unimplemented), and the host then keeps everything.
//
// Semantics a Retainer must keep:
//
//   - Expire removes messages (chats and recall events) of conversations of one chat type
//     whose server time is before req.BeforeMs, oldest first per conversation, at most
//     req.Limit of them, together with every inbox entry that names them. It answers
//     More when it stopped at the limit. Seqs of a conversation are never reused: the next
//     chat after an expiry gets the seq after the last one ever stored. A conversation
//     whose every chat expired leaves the conversation lists (its cursors stay); unread
//     counts and conversation heads never count an expired chat.
//   - EraseUser removes every message req.User sent (private and group, with the inbox
//     entries naming them), every private conversation of the user (all its messages,
//     both sides' inbox entries and cursors, both users' list entries), the user's own
//     inbox, cursors and known-user record, and the user's group memberships. Seqs are
//     not reused. Erasing a user with no data removes nothing and is not an error.
type Retainer interface {
	Expire(ctx context.Context, req *pb.ExpireRequest) (*pb.ExpireResponse, error)
	EraseUser(ctx context.Context, req *pb.EraseUserRequest) (*pb.EraseUserResponse, error)
}

// ErrUnsupported: the plugin does not implement the (optional) call.
var ErrUnsupported = errors.New("not supported by the storage plugin")

var _ Retainer = (*Client)(nil)

// CheckExpire reports what makes an Expire request unfit (ErrInvalid), or nil.
func CheckExpire(r *pb.ExpireRequest) error {
	switch {
	case r.GetChatType() != ChatTypeGroup && r.GetChatType() != ChatTypePrivate:
		return fmt.Errorf("expire: chat type %d is neither group (1) nor private (2): %w", r.GetChatType(), ErrInvalid)
	case r.GetBeforeMs() <= 0:
		return fmt.Errorf("expire: before %d is not a time: %w", r.GetBeforeMs(), ErrInvalid)
	case r.GetLimit() < 0:
		return fmt.Errorf("expire: negative limit: %w", ErrInvalid)
	}
	return nil
}

// ConvPrefix is the prefix of the conversation keys of a chat type ("g:" or "p:").
func ConvPrefix(chatType int32) string {
	if chatType == ChatTypeGroup {
		return "g:"
	}
	return "p:"
}

// Expire implements Retainer.
func (c *Client) Expire(ctx context.Context, r *pb.ExpireRequest) (*pb.ExpireResponse, error) {
	res, err := c.rpc.Expire(ctx, r)
	return res, optional("expire", err)
}

// EraseUser implements Retainer.
func (c *Client) EraseUser(ctx context.Context, r *pb.EraseUserRequest) (*pb.EraseUserResponse, error) {
	res, err := c.rpc.EraseUser(ctx, r)
	return res, optional("erase user", err)
}

// optional is fromStatus that turns Unimplemented into ErrUnsupported.
func optional(op string, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("storage %s: %w", op, ErrUnsupported)
	}
	return fromStatus(op, err)
}

// Expire implements pb.StorageServer: Unimplemented unless the Backend is a Retainer.
func (s *Server) Expire(ctx context.Context, r *pb.ExpireRequest) (*pb.ExpireResponse, error) {
	rt, ok := s.b.(Retainer)
	if !ok {
		return s.UnimplementedStorageServer.Expire(ctx, r)
	}
	res, err := rt.Expire(ctx, r)
	return res, toStatus(err)
}

// EraseUser implements pb.StorageServer: Unimplemented unless the Backend is a Retainer.
func (s *Server) EraseUser(ctx context.Context, r *pb.EraseUserRequest) (*pb.EraseUserResponse, error) {
	rt, ok := s.b.(Retainer)
	if !ok {
		return s.UnimplementedStorageServer.EraseUser(ctx, r)
	}
	res, err := rt.EraseUser(ctx, r)
	return res, toStatus(err)
}
