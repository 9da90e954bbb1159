package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/store"
)

// Storage is what the command layer needs from storage (implemented by store.Service):
// offline messages and their confirmation (cmd 19 type 0), history (cmd 19 type 1),
// recall (cmd 15), and the groups and users to remember across restarts.
type Storage interface {
	Offline(ctx context.Context, q store.OfflineQuery) (store.OfflinePage, error)
	History(ctx context.Context, q store.HistoryQuery) (store.HistoryPage, error)
	Recall(ctx context.Context, q store.RecallQuery) (event packet.Chat, already bool, err error)
	Join(ctx context.Context, group, name string, members ...string) error
	Leave(ctx context.Context, group, member string) error
	RememberUser(ctx context.Context, id, nick, avatar string) error
	// Receipt and Conversations serve cmd 25 and cmd 28 (receipts.go).
	Receipt(ctx context.Context, q store.ReceiptQuery) (store.Cursor, error)
	Conversations(ctx context.Context, q store.ConversationsQuery) (store.ConversationsPage, error)
}

var (
	_ Storage = (*store.Service)(nil)
	_ Storage = store.Off{}
)

// messageQuery is the body of cmd 19 with timgw's additions that packet.GetMessage does
// not carry yet.
type messageQuery struct {
	packet.GetMessage
	// BeforeSeq (history): only messages with seq < beforeSeq (scrolling back).
	BeforeSeq packet.Int `json:"beforeSeq,omitempty"`
	// Reverse (history): the page nearest the newest end (still in seq order).
	Reverse bool `json:"reverse,omitempty"`
	// Ack (offline): confirm receipt of every offline message up to this cursor (from a
	// previous type 0 answer) before reading the next page.
	Ack packet.Int `json:"ack,omitempty"`
}

// messagePage is the data of a cmd 20 answer: t-im's shape, plus the paging members.
type messagePage struct {
	UserID  string                   `json:"userId"`
	Friends map[string][]packet.Chat `json:"friends"`
	Groups  map[string][]packet.Chat `json:"groups"`
	// Cursor (offline): confirm with it ("ack") once these messages are safe.
	Cursor *int64 `json:"cursor,omitempty"`
	// Confirmed (offline): how many messages the request's ack confirmed.
	Confirmed *int64 `json:"confirmed,omitempty"`
	// More: there are more messages after this page.
	More bool `json:"more"`
}

func newPage(user string, entries []store.Entry) *messagePage {
	p := &messagePage{UserID: user, Friends: map[string][]packet.Chat{}, Groups: map[string][]packet.Chat{}}
	for _, e := range entries {
		if e.Group != "" {
			p.Groups[e.Group] = append(p.Groups[e.Group], e.Chat)
		} else {
			p.Friends[e.Peer] = append(p.Friends[e.Peer], e.Chat)
		}
	}
	return p
}

// storageStatus maps a storage error to a status code.
func storageStatus(err error, fallback packet.Status) packet.Status {
	switch {
	case errors.Is(err, store.ErrPersistenceOff):
		return packet.StatusPersistenceOff
	case errors.Is(err, store.ErrUnavailable):
		return packet.StatusStorageUnavailable
	case errors.Is(err, store.ErrNotFound):
		return packet.StatusNotFound
	case errors.Is(err, store.ErrRecallWindow):
		return packet.StatusRecallWindowExpired
	}
	return fallback
}

// getMessages runs cmd 19: type 0 offline messages (with confirmation), type 1 history.
func (g *Gateway) getMessages(ctx context.Context, c Conn, cl *client, p packet.Packet) {
	var q messageQuery
	if !g.decode(c, p, &q) {
		return
	}
	if q.UserID != "" && string(q.UserID) != cl.userID {
		g.fail(c, packet.CmdGetMessageResp, packet.StatusForbidden, fmt.Sprintf("userId %q is not the logged-in user", q.UserID))
		return
	}
	peer, group := strings.TrimSpace(string(q.FromUserID)), strings.TrimSpace(string(q.GroupID))
	if peer != "" && group != "" {
		g.fail(c, packet.CmdGetMessageResp, packet.StatusGetMessageFailed, "give fromUserId or groupId, not both")
		return
	}
	if group != "" && !g.reg.IsMember(group, cl.userID) {
		g.fail(c, packet.CmdGetMessageResp, packet.StatusNotGroupMember, fmt.Sprintf("%s is not a member of group %s", cl.userID, group))
		return
	}
	switch q.Type {
	case 0:
		page, err := g.store.Offline(ctx, store.OfflineQuery{User: cl.userID, Peer: peer, Group: group,
			Ack: int64(q.Ack), Count: int64(q.Count)})
		if err != nil {
			g.log.Warn("offline messages", "user", cl.userID, "err", err)
			g.fail(c, packet.CmdGetMessageResp, storageStatus(err, packet.StatusGetMessageFailed), err.Error())
			return
		}
		data := newPage(cl.userID, page.Messages)
		data.Cursor, data.Confirmed, data.More = &page.Cursor, &page.Confirmed, page.More
		r := packet.NewResponse(packet.CmdGetMessageResp, packet.StatusGetOfflineMsgOK)
		r.Data = data
		g.reply(c, r)
	case 1:
		if peer == "" && group == "" {
			g.fail(c, packet.CmdGetMessageResp, packet.StatusGetMessageFailed, "history (type 1) needs fromUserId or groupId")
			return
		}
		page, err := g.store.History(ctx, store.HistoryQuery{User: cl.userID, Peer: peer, Group: group,
			AfterSeq: int64(q.AfterSeq), BeforeSeq: int64(q.BeforeSeq), BeginTime: int64(q.BeginTime),
			EndTime: int64(q.EndTime), Offset: int64(q.Offset), Count: int64(q.Count), Reverse: q.Reverse})
		if err != nil {
			g.log.Warn("history", "user", cl.userID, "err", err)
			g.fail(c, packet.CmdGetMessageResp, storageStatus(err, packet.StatusGetMessageFailed), err.Error())
			return
		}
		data := newPage(cl.userID, page.Messages)
		data.More = page.More
		if group != "" && data.Groups[group] == nil {
			data.Groups[group] = []packet.Chat{}
		} else if peer != "" && data.Friends[peer] == nil {
			data.Friends[peer] = []packet.Chat{}
		}
		r := packet.NewResponse(packet.CmdGetMessageResp, packet.StatusGetHistoryOK)
		r.Data = data
		g.reply(c, r)
	default:
		g.fail(c, packet.CmdGetMessageResp, packet.StatusGetMessageFailed, fmt.Sprintf("type %d is not 0 (offline) or 1 (history)", int64(q.Type)))
	}
}

// recallReq runs cmd 15 from a client: the sender recalls its own chat.
func (g *Gateway) recallReq(ctx context.Context, c Conn, cl *client, p packet.Packet) {
	var m packet.CancelMsg
	if !g.decode(c, p, &m) {
		return
	}
	r := g.recall(ctx, cl.userID, cl.userID, m, false, c.ID())
	g.reply(c, r)
}

// recall recalls the chat m.ID sent by from, by who (from itself, or an administrator),
// and notifies the conversation (but skip's connection) with cmd 16 through the delivery
// seam.
func (g *Gateway) recall(ctx context.Context, from, by string, m packet.CancelMsg, admin bool, skip uint64) *packet.Response {
	fail := func(code packet.Status, msg string) *packet.Response {
		r := packet.NewResponse(packet.CmdCancelMsgResp, code)
		r.Msg = msg
		return r
	}
	id, to, group := strings.TrimSpace(string(m.ID)), strings.TrimSpace(string(m.To)), strings.TrimSpace(string(m.GroupID))
	if m.ChatType == packet.ChatTypePrivate {
		group = ""
	}
	if id == "" || (to == "" && group == "") {
		return fail(packet.StatusInvalidBody, "recall needs the message's id, and its to (private) or groupId (group)")
	}
	var receivers []string
	if group != "" {
		to = ""
		members, _ := g.reg.Members(group, nil)
		for _, u := range members {
			if u != from {
				receivers = append(receivers, u)
			}
		}
	} else if to != from {
		receivers = []string{to}
	}
	ev, already, err := g.store.Recall(ctx, store.RecallQuery{From: from, ID: id, Peer: to, Group: group,
		By: by, Admin: admin, Receivers: receivers})
	if err != nil {
		return fail(storageStatus(err, packet.StatusSendFailed), err.Error())
	}
	r := packet.NewResponse(packet.CmdCancelMsgResp, packet.StatusOK)
	r.Msg = "recalled"
	if already {
		r.Msg = "recalled before"
	}
	r.Data = ev
	if !already {
		g.push(ctx, router.Envelope{Kind: router.KindNotice, Notice: packet.ResponsePacket(r),
			Receivers: append(receivers, from), SkipConn: skip})
	}
	return r
}

// remember stores a user that logged in (first time since start, or with a profile), so
// that it is known after a restart. Failures are logged: a login does not need storage.
func (g *Gateway) remember(ctx context.Context, user, nick, avatar string, known bool) {
	if known && nick == "" && avatar == "" {
		return
	}
	if err := g.store.RememberUser(ctx, user, nick, avatar); err != nil {
		g.log.Warn("storage: user not remembered", "user", user, "err", err)
	}
}

// rememberJoin stores that user joined group, so that after a restart group chats still
// reach the user's inbox.
func (g *Gateway) rememberJoin(ctx context.Context, group, name, user string) {
	if err := g.store.Join(ctx, group, name, user); err != nil {
		g.log.Warn("storage: group membership not remembered", "group", group, "user", user, "err", err)
	}
}
