package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Errors of Service, besides those wrapping storage.ErrUnavailable.
var (
	// ErrNotFound: no such message (or not in the conversation named).
	ErrNotFound = storage.ErrNotFound
	// ErrRecallWindow: the sender asked too late.
	ErrRecallWindow = storage.ErrRecallWindow
	// ErrUnavailable: the storage plugin is down.
	ErrUnavailable = storage.ErrUnavailable
)

// Service answers the command layer's storage questions: offline messages and their
// confirmation, history, recall, and the groups and users to remember.
type Service struct {
	src     source
	cfg     Limits
	clock   func() time.Time
	metrics *metrics
}

// Limits are the Service's configured bounds.
type Limits struct {
	PageSize     int           // default page
	MaxPageSize  int           // largest page
	RecallWindow time.Duration // < 0: senders cannot recall
	// Timeout bounds each storage call (storage.write_timeout; 0: unbounded): a hung
	// plugin gets the caller ErrUnavailable within it, never a wait without end.
	Timeout time.Duration
}

// NewService returns the query side of the supervised store.
func NewService(s *Supervisor) *Service {
	return &Service{src: s, cfg: Limits{PageSize: s.cfg.PageSize, MaxPageSize: s.cfg.MaxPageSize,
		RecallWindow: s.cfg.RecallWindow, Timeout: s.cfg.WriteTimeout}, clock: time.Now, metrics: s.metrics}
}

// RecallWindow returns the configured window (negative: senders cannot recall).
func (s *Service) RecallWindow() time.Duration { return s.cfg.RecallWindow }

// get returns the store, waiting briefly for a restart in progress.
func (s *Service) get(ctx context.Context) (conn, error) { return s.src.get(ctx, retryWait) }

// bounded gives one storage operation at most Limits.Timeout.
func (s *Service) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func (s *Service) page(count int64) int32 {
	switch {
	case count <= 0:
		return int32(s.cfg.PageSize)
	case count > int64(s.cfg.MaxPageSize):
		return int32(s.cfg.MaxPageSize)
	}
	return int32(count)
}

// OfflineQuery asks for a user's pending messages.
type OfflineQuery struct {
	User string
	// Peer or Group restrict the answer (and the confirmation) to one conversation.
	Peer, Group string
	// Ack confirms receipt of every pending message up to this cursor (of the same
	// conversation restriction) before the page is read.
	Ack int64
	// Count is the page size (0: the default).
	Count int64
}

// OfflinePage is a page of pending messages, oldest first.
type OfflinePage struct {
	Messages []Entry
	// Cursor is the position of the last message of the page (to confirm with); when the
	// page is empty, the Ack of the query.
	Cursor int64
	// More reports pending messages after this page.
	More bool
	// Confirmed is how many messages the query's Ack confirmed.
	Confirmed int64
}

// Entry is a stored message as a client sees it, with its conversation.
type Entry struct {
	Chat packet.Chat
	// Peer is the other user of a private conversation (for the user who asked).
	Peer string
	// Group is the group of a group conversation.
	Group string
}

// conv returns the conversation key a query restricts to ("" for none).
func conv(user, peer, group string) string {
	switch {
	case group != "":
		return storage.GroupConv(group)
	case peer != "":
		return storage.PrivateConv(user, peer)
	}
	return ""
}

// Offline confirms q.Ack and returns the next page of q.User's pending messages.
func (s *Service) Offline(ctx context.Context, q OfflineQuery) (OfflinePage, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return OfflinePage{}, s.fail(nil, opInbox, err)
	}
	cv := conv(q.User, q.Peer, q.Group)
	var page OfflinePage
	if q.Ack > 0 {
		res, err := c.Confirm(ctx, &pb.ConfirmRequest{User: q.User, Cursor: q.Ack, Conv: cv})
		if err != nil {
			return OfflinePage{}, fmt.Errorf("confirm: %w", s.fail(c, opConfirm, err))
		}
		page.Confirmed = res.Removed
	}
	res, err := c.Inbox(ctx, &pb.InboxRequest{User: q.User, Conv: cv, Limit: s.page(q.Count)})
	if err != nil {
		return OfflinePage{}, fmt.Errorf("inbox: %w", s.fail(c, opInbox, err))
	}
	page.More, page.Cursor = res.More, q.Ack
	for _, e := range res.Entries {
		page.Messages = append(page.Messages, entry(q.User, e.Message))
		page.Cursor = e.Cursor
	}
	return page, nil
}

// HistoryQuery asks for a page of a conversation, in seq order.
type HistoryQuery struct {
	User        string // who asks: one side of a private conversation
	Peer, Group string // the conversation: the other user, or a group
	AfterSeq    int64
	BeforeSeq   int64
	BeginTime   int64
	EndTime     int64
	Offset      int64
	Count       int64
	Reverse     bool // the page nearest the newest end
}

// HistoryPage is a page of a conversation.
type HistoryPage struct {
	Messages []Entry
	More     bool
}

// History returns a page of a conversation. It does not check group membership: the
// caller does.
func (s *Service) History(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	cv := conv(q.User, q.Peer, q.Group)
	if cv == "" {
		return HistoryPage{}, errors.New("history needs a peer or a group")
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return HistoryPage{}, s.fail(nil, opHistory, err)
	}
	res, err := c.History(ctx, &pb.HistoryRequest{Conv: cv, AfterSeq: q.AfterSeq, BeforeSeq: q.BeforeSeq,
		BeginTime: q.BeginTime, EndTime: q.EndTime, Offset: int32(min(max(q.Offset, 0), 1<<30)),
		Limit: s.page(q.Count), Reverse: q.Reverse})
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history: %w", s.fail(c, opHistory, err))
	}
	page := HistoryPage{More: res.More}
	for _, m := range res.Messages {
		page.Messages = append(page.Messages, entry(q.User, m))
	}
	return page, nil
}

// RecallQuery asks to recall a chat.
type RecallQuery struct {
	From, ID    string // the chat: its sender and id
	Peer, Group string // its conversation: the receiver of a private chat, or its group
	By          string // who recalls (the sender, or an administrator's name)
	Admin       bool   // no recall window
	// Receivers get an inbox entry for the recall (the conversation's other users).
	Receivers []string
}

// Recall marks the chat recalled and returns the recall event (a Chat with cmd 16, see
// ToChat) and whether it had been recalled before.
func (s *Service) Recall(ctx context.Context, q RecallQuery) (event packet.Chat, already bool, err error) {
	now := s.clock()
	req := &pb.RecallRequest{From: q.From, Id: q.ID, By: q.By, Time: now.UnixMilli(),
		Receivers: q.Receivers, Conv: conv(q.From, q.Peer, q.Group)}
	if !q.Admin {
		if s.cfg.RecallWindow < 0 {
			return packet.Chat{}, false, fmt.Errorf("senders cannot recall (storage.recall_window < 0): %w", ErrRecallWindow)
		}
		req.NotBefore = now.Add(-s.cfg.RecallWindow).UnixMilli()
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return packet.Chat{}, false, s.fail(nil, opRecall, err)
	}
	res, err := c.Recall(ctx, req)
	if err != nil {
		return packet.Chat{}, false, fmt.Errorf("recall: %w", s.fail(c, opRecall, err))
	}
	ev := res.Event
	if ev == nil { // recalled by a plugin that keeps no event
		ev = res.Message
	}
	return ToChat(ev), res.Already, nil
}

// Join records that members belong to a group.
func (s *Service) Join(ctx context.Context, group, name string, members ...string) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return s.fail(nil, opJoin, err)
	}
	if _, err := c.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: group, Name: name, Members: members}); err != nil {
		return fmt.Errorf("join group: %w", s.fail(c, opJoin, err))
	}
	return nil
}

// Leave records that member left a group.
func (s *Service) Leave(ctx context.Context, group, member string) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return s.fail(nil, opLeave, err)
	}
	if _, err := c.LeaveGroup(ctx, &pb.LeaveGroupRequest{GroupId: group, Member: member}); err != nil {
		return fmt.Errorf("leave group: %w", s.fail(c, opLeave, err))
	}
	return nil
}

// RememberUser records a user that logged in.
func (s *Service) RememberUser(ctx context.Context, id, nick, avatar string) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.get(ctx)
	if err != nil {
		return s.fail(nil, opPutUser, err)
	}
	if _, err := c.PutUser(ctx, &pb.PutUserRequest{User: &pb.User{UserId: id, Nick: nick, Avatar: avatar}}); err != nil {
		return fmt.Errorf("remember user: %w", s.fail(c, opPutUser, err))
	}
	return nil
}

// fail counts a failed operation and returns its error, made an ErrUnavailable when the
// plugin did not answer in time; an unavailable plugin is checked at once.
func (s *Service) fail(c conn, op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, storage.ErrUnavailable) {
		err = fmt.Errorf("no answer within %v: %w: %w", s.cfg.Timeout, err, storage.ErrUnavailable)
	}
	if errors.Is(err, storage.ErrUnavailable) && c != nil {
		s.src.failed(c)
	}
	s.metrics.failed(op, err)
	return err
}

// entry converts a stored message for user.
func entry(user string, m *pb.Message) Entry {
	e := Entry{Chat: ToChat(m), Group: m.GroupId}
	if m.ChatType == storage.ChatTypePrivate {
		e.Peer = m.To
		if m.To == user {
			e.Peer = m.From
		}
	}
	return e
}

// recallExtras is the extras object of a recall event.
type recallExtras struct {
	RecallSeq  int64  `json:"recallSeq"`  // the recalled chat's seq
	RecalledBy string `json:"recalledBy"` // who recalled it
}

// ToChat renders a stored message as the chat clients get. A recall event is a Chat with
// cmd 16: id and from name the recalled chat, seq is the event's own place in the
// conversation, createTime the recall's time, recalled true, and extras
// {"recallSeq": the recalled chat's seq, "recalledBy": who recalled it}.
func ToChat(m *pb.Message) packet.Chat {
	c := packet.Chat{ID: packet.Str(m.Id), From: packet.Str(m.From), To: packet.Str(m.To),
		Cmd: packet.Int(packet.CmdChatReq), CreateTime: packet.Int(m.CreateTime), MsgType: packet.Int(m.MsgType),
		ChatType: packet.Int(m.ChatType), GroupID: packet.Str(m.GroupId), Content: m.Content,
		Seq: m.Seq, Recalled: m.Recalled}
	if len(m.Extras) > 0 {
		c.Extras = json.RawMessage(m.Extras)
	}
	if m.Kind == storage.KindRecall {
		c.Cmd = packet.Int(packet.CmdCancelMsgResp)
		c.ID = packet.Str(m.RecallId)
		c.Extras, _ = json.Marshal(recallExtras{RecallSeq: m.RecallSeq, RecalledBy: m.RecalledBy})
	}
	return c
}
