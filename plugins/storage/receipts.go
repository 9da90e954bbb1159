package storage

import (
	"context"
	"fmt"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Receipts and conversations: the host's calls (Client) and the plugin's service (Server).

// SetCursor implements Backend.
func (c *Client) SetCursor(ctx context.Context, r *pb.SetCursorRequest) (*pb.SetCursorResponse, error) {
	res, err := c.rpc.SetCursor(ctx, r)
	return res, fromStatus("set cursor", err)
}

// Cursors implements Backend.
func (c *Client) Cursors(ctx context.Context, r *pb.CursorsRequest) (*pb.CursorsResponse, error) {
	res, err := c.rpc.Cursors(ctx, r, CallOptions()...)
	return res, fromStatus("cursors", err)
}

// Conversations implements Backend.
func (c *Client) Conversations(ctx context.Context, r *pb.ConversationsRequest) (*pb.ConversationsResponse, error) {
	res, err := c.rpc.Conversations(ctx, r, CallOptions()...)
	return res, fromStatus("conversations", err)
}

// SetCursor implements pb.StorageServer.
func (s *Server) SetCursor(ctx context.Context, r *pb.SetCursorRequest) (*pb.SetCursorResponse, error) {
	res, err := s.b.SetCursor(ctx, r)
	return res, toStatus(err)
}

// Cursors implements pb.StorageServer.
func (s *Server) Cursors(ctx context.Context, r *pb.CursorsRequest) (*pb.CursorsResponse, error) {
	res, err := s.b.Cursors(ctx, r)
	return res, toStatus(err)
}

// Conversations implements pb.StorageServer.
func (s *Server) Conversations(ctx context.Context, r *pb.ConversationsRequest) (*pb.ConversationsResponse, error) {
	res, err := s.b.Conversations(ctx, r)
	return res, toStatus(err)
}

// RaiseCursor returns cur raised by a request: delivered and read only go up, and read
// implies delivered. A plugin stores what it returns.
func RaiseCursor(cur *pb.Cursor, delivered, read int64) *pb.Cursor {
	out := &pb.Cursor{Conv: cur.GetConv(), Delivered: cur.GetDelivered(), Read: cur.GetRead()}
	out.Read = max(out.Read, read)
	out.Delivered = max(out.Delivered, delivered, out.Read)
	return out
}

// CheckCursor reports what makes a SetCursor request unfit (ErrInvalid), or nil.
func CheckCursor(r *pb.SetCursorRequest) error {
	switch {
	case r.GetUser() == "" || r.GetConv() == "":
		return fmt.Errorf("set cursor: empty user or conversation: %w", ErrInvalid)
	case r.GetDelivered() < 0 || r.GetRead() < 0:
		return fmt.Errorf("set cursor: negative seq: %w", ErrInvalid)
	}
	return nil
}

// Unread reports whether m counts as unread for user: a chat (not a recall event) of
// someone else, not recalled.
func Unread(m *pb.Message, user string) bool {
	return m.GetKind() == KindChat && m.GetFrom() != user && !m.GetRecalled()
}
