package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// ErrInvalid: the storage refused a malformed request (empty user, negative seq).
var ErrInvalid = storage.ErrInvalid

// Cursor is a user's position in a conversation: every chat up to Delivered reached a
// device of the user, every chat up to Read was read.
type Cursor struct {
	Delivered, Read int64
}

func cursorOf(c *pb.Cursor) Cursor { return Cursor{Delivered: c.GetDelivered(), Read: c.GetRead()} }

// ReceiptQuery raises User's cursors of a conversation: the private one with Peer, or
// Group's.
type ReceiptQuery struct {
	User        string
	Peer, Group string
	// Delivered and Read are seqs; 0 leaves a cursor as it is. Read implies delivered.
	Delivered, Read int64
}

// Receipt raises the cursors of q (they never go down), removes the user's offline
// entries of the conversation up to the delivered cursor, and returns the cursors as
// stored.
func (s *Service) Receipt(ctx context.Context, q ReceiptQuery) (Cursor, error) {
	cv := conv(q.User, q.Peer, q.Group)
	if cv == "" {
		return Cursor{}, errors.New("a receipt needs a peer or a group")
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return Cursor{}, s.fail(nil, opCursor, err)
	}
	res, err := c.SetCursor(ctx, &pb.SetCursorRequest{User: q.User, Conv: cv, Delivered: q.Delivered, Read: q.Read})
	if err != nil {
		return Cursor{}, fmt.Errorf("receipt: %w", s.fail(c, opCursor, err))
	}
	return cursorOf(res.Cursor), nil
}

// ConversationsQuery asks for a page of a user's conversations, newest first.
type ConversationsQuery struct {
	User string
	// Groups are the user's groups (membership is the gateway's).
	Groups []string
	// Count is the page size (0: the default); Before pages (server time, ms; 0: newest).
	Count, Before int64
}

// Conversation is one conversation of a user: the private one with Peer, or Group's.
type Conversation struct {
	Peer, Group string
	// Last is the conversation's last chat; LastTime its server time.
	Last     packet.Chat
	LastTime int64
	// Unread counts the chats of others after Mine.Read that are not recalled.
	Unread int64
	Mine   Cursor
	// PeerCursor is the peer's cursor (private conversations).
	PeerCursor Cursor
}

// ConversationsPage is a page of conversations, newest first.
type ConversationsPage struct {
	Conversations []Conversation
	// Next is the Before of the next page; 0 on the last page.
	Next int64
}

// Conversations returns a page of q.User's conversations with their last chat, both
// sides' cursors and the unread count.
func (s *Service) Conversations(ctx context.Context, q ConversationsQuery) (ConversationsPage, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return ConversationsPage{}, s.fail(nil, opConversations, err)
	}
	res, err := c.Conversations(ctx, &pb.ConversationsRequest{User: q.User, Groups: q.Groups,
		Limit: s.page(q.Count), Before: q.Before})
	if err != nil {
		return ConversationsPage{}, fmt.Errorf("conversations: %w", s.fail(c, opConversations, err))
	}
	var page ConversationsPage
	for _, cv := range res.Conversations {
		e := entry(q.User, cv.Last)
		page.Conversations = append(page.Conversations, Conversation{Peer: e.Peer, Group: e.Group,
			Last: e.Chat, LastTime: cv.LastTime, Unread: cv.Unread, Mine: cursorOf(cv.Mine), PeerCursor: cursorOf(cv.Peer)})
	}
	if res.More && len(res.Conversations) > 0 {
		page.Next = res.Conversations[len(res.Conversations)-1].LastTime
	}
	return page, nil
}

// Receipt answers ErrPersistenceOff.
func (Off) Receipt(context.Context, ReceiptQuery) (Cursor, error) { return Cursor{}, ErrPersistenceOff }

// Conversations answers ErrPersistenceOff.
func (Off) Conversations(context.Context, ConversationsQuery) (ConversationsPage, error) {
	return ConversationsPage{}, ErrPersistenceOff
}
