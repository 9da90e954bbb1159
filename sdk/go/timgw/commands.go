package timgw

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Conv names a conversation: a peer (To) or a group (GroupID).
type Conv struct {
	To      string
	GroupID string
}

// Peer is the private conversation with user id.
func Peer(id string) Conv { return Conv{To: id} }

// Group is the conversation of group id.
func Group(id string) Conv { return Conv{GroupID: id} }

// fields adds the conversation's member to a request body.
func (v Conv) fields(body map[string]any) map[string]any {
	if v.To != "" {
		body["to"] = v.To
	}
	if v.GroupID != "" {
		body["groupId"] = v.GroupID
	}
	return body
}

// Ack is the cmd 12 answer to an accepted chat.
type Ack struct {
	Code       packet.Status // 10000 sent, 10001 receiver offline (kept for later)
	Msg        string
	ID         string
	Seq        int64 // the chat's seq in its conversation, when stored
	CreateTime int64
	ServerTime int64
	Delivered  int  // connections reached
	Duplicate  bool // a resend of an id already accepted: not delivered again
}

// Send sends a chat (cmd 11) and returns the cmd 12 answer; a refusal is an *Error. A
// chat without ID gets one, so that a resend after a lost answer is delivered once (the
// gateway answers it with Duplicate set). With the outbox (unless Options.NoOutbox), a
// chat whose answer has not come when the connection is lost, or that is sent while the
// client reconnects, is written after the next login and Send returns its first answer;
// a refusal with 10030 or 10034 is retried the same way. Send waits at most the
// context's deadline or RequestTimeout; then it returns an *UnackedError.
func (c *Client) Send(ctx context.Context, m packet.Chat) (*Ack, error) {
	if m.ID == "" {
		m.ID = packet.Str(c.newID())
	}
	if m.ChatType == packet.ChatTypeUnknown {
		m.ChatType = packet.ChatTypePrivate
		if m.GroupID != "" {
			m.ChatType = packet.ChatTypeGroup
		}
	}
	m.Cmd = packet.Int(packet.CmdChatReq)
	c.remember(string(m.ID)) // our other devices' copies and our inbox need not show it again
	var r *wire.Response
	var err error
	if c.opts.NoOutbox {
		r, err = c.request(ctx, packet.CmdChatReq, m, string(m.ID))
	} else {
		r, err = c.sendOutbox(ctx, m)
	}
	if err != nil {
		return nil, err
	}
	var d struct {
		ID         packet.Str
		Seq        packet.Int
		CreateTime packet.Int
		ServerTime packet.Int
		Delivered  packet.Int
		Duplicate  bool
	}
	if err := jsonUnmarshal(r.Data, &d); err != nil {
		return nil, fmt.Errorf("timgw: chat answer: %w", err)
	}
	a := &Ack{Code: r.Code, Msg: r.Msg, ID: string(d.ID), Seq: int64(d.Seq), CreateTime: int64(d.CreateTime),
		ServerTime: int64(d.ServerTime), Delivered: int(d.Delivered), Duplicate: d.Duplicate}
	if a.ID == "" {
		a.ID = string(m.ID)
	}
	return a, nil
}

// Chat sends the text content to user to.
func (c *Client) Chat(ctx context.Context, to, content string) (*Ack, error) {
	return c.Send(ctx, packet.Chat{To: packet.Str(to), ChatType: packet.ChatTypePrivate, Content: content})
}

// ChatGroup sends the text content to group groupID.
func (c *Client) ChatGroup(ctx context.Context, groupID, content string) (*Ack, error) {
	return c.Send(ctx, packet.Chat{GroupID: packet.Str(groupID), ChatType: packet.ChatTypeGroup, Content: content})
}

// Join joins a group (cmd 7) and returns it; the client joins it again after every
// reconnection.
func (c *Client) Join(ctx context.Context, groupID string) (packet.Group, error) {
	g := packet.Group{GroupID: groupID}
	r, err := c.request(ctx, packet.CmdJoinGroupReq, packet.JoinGroup{GroupID: packet.Str(groupID)}, "")
	if err != nil {
		return g, err
	}
	c.mu.Lock()
	c.groups[groupID] = true
	c.mu.Unlock()
	_ = jsonUnmarshal(r.Group, &g)
	return g, nil
}

// Leave leaves a group (cmd 21); 10025 (an *Error) when not a member.
func (c *Client) Leave(ctx context.Context, groupID string) error {
	c.mu.Lock()
	delete(c.groups, groupID)
	c.mu.Unlock()
	_, err := c.request(ctx, packet.CmdLeaveGroupReq, packet.LeaveGroup{GroupID: packet.Str(groupID)}, "")
	return err
}

// Typing sends a typing signal (cmd 23) to a peer or a group; state "" is "typing". An
// accepted signal has no answer: a refusal (a rate limit, 10028) arrives as an ErrorEvent.
func (c *Client) Typing(v Conv, state string) error {
	conn := c.current()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Send(packet.CmdTypingReq, packet.Typing{To: packet.Str(v.To), GroupID: packet.Str(v.GroupID), State: state})
}

// Cursors are one user's delivered and read seqs of a conversation.
type Cursors struct {
	To, GroupID     string
	Delivered, Read int64
}

// Receipt raises this user's delivered and/or read cursors of a conversation (cmd 25; a
// zero is left out) and returns them as stored. The other side gets a Receipt event.
// Needs a gateway with storage.
func (c *Client) Receipt(ctx context.Context, v Conv, delivered, read int64) (Cursors, error) {
	body := v.fields(map[string]any{})
	if delivered > 0 {
		body["delivered"] = delivered
	}
	if read > 0 {
		body["read"] = read
	}
	r, err := c.request(ctx, packet.CmdReceiptReq, body, "")
	if err != nil {
		return Cursors{}, err
	}
	var d packet.Receipt
	if err := jsonUnmarshal(r.Data, &d); err != nil {
		return Cursors{}, fmt.Errorf("timgw: receipt answer: %w", err)
	}
	return Cursors{To: string(d.To), GroupID: string(d.GroupID), Delivered: int64(d.Delivered), Read: int64(d.Read)}, nil
}

// Conversation is one entry of the conversation list (cmd 29).
type Conversation struct {
	Type          string // "private" or "group"
	Peer          string
	GroupID       string
	Name          string
	Last          *Message // the last chat
	LastSeq       int64
	Unread        int64
	Delivered     int64 // this user's cursors
	Read          int64
	PeerDelivered int64 // the peer's (private only)
	PeerRead      int64
}

// Conversations lists this user's conversations, newest last chat first (cmd 28): a page
// of at most limit (0: the gateway's default) whose last chat is before before (ms, 0:
// any). next, when not zero, is the before of the next page.
func (c *Client) Conversations(ctx context.Context, limit int, before int64) (list []Conversation, next int64, err error) {
	body := map[string]any{}
	if limit > 0 {
		body["limit"] = limit
	}
	if before > 0 {
		body["before"] = before
	}
	r, err := c.request(ctx, packet.CmdConversationsReq, body, "")
	if err != nil {
		return nil, 0, err
	}
	var d struct {
		Conversations []struct {
			Type, Name                                                string
			Peer, GroupID                                             packet.Str
			Last                                                      *packet.Chat
			LastSeq, Unread, Delivered, Read, PeerDelivered, PeerRead packet.Int
		}
		Next packet.Int
	}
	if err := jsonUnmarshal(r.Data, &d); err != nil {
		return nil, 0, fmt.Errorf("timgw: conversations answer: %w", err)
	}
	for _, v := range d.Conversations {
		cv := Conversation{Type: v.Type, Name: v.Name, Peer: string(v.Peer), GroupID: string(v.GroupID),
			LastSeq: int64(v.LastSeq), Unread: int64(v.Unread), Delivered: int64(v.Delivered), Read: int64(v.Read),
			PeerDelivered: int64(v.PeerDelivered), PeerRead: int64(v.PeerRead)}
		if v.Last != nil {
			m := messageOf(*v.Last, false)
			cv.Last = &m
		}
		list = append(list, cv)
	}
	return list, int64(d.Next), nil
}

// HistoryQuery selects stored chats of one conversation (cmd 19 type 1).
type HistoryQuery struct {
	Conv
	Count, Offset       int
	AfterSeq, BeforeSeq int64 // seq bounds (exclusive), 0: none
	BeginTime, EndTime  int64 // ms, 0: none
	Reverse             bool  // newest first when paging
}

// History reads a stored conversation; the messages are in seq order (a recall event
// has Cmd 16) and more says whether more match.
func (c *Client) History(ctx context.Context, q HistoryQuery) (msgs []Message, more bool, err error) {
	body := map[string]any{"userId": c.User().UserID, "type": 1}
	if q.To != "" {
		body["fromUserId"] = q.To
	}
	if q.GroupID != "" {
		body["groupId"] = q.GroupID
	}
	for k, v := range map[string]int64{"count": int64(q.Count), "offset": int64(q.Offset), "afterSeq": q.AfterSeq,
		"beforeSeq": q.BeforeSeq, "beginTime": q.BeginTime, "endTime": q.EndTime} {
		if v > 0 {
			body[k] = v
		}
	}
	if q.Reverse {
		body["reverse"] = true
	}
	r, err := c.request(ctx, packet.CmdGetMessageReq, body, "")
	if err != nil {
		return nil, false, err
	}
	page, err := decodeMessagePage(r.Data)
	if err != nil {
		return nil, false, err
	}
	for _, m := range page.chats {
		msgs = append(msgs, messageOf(m, false))
	}
	return msgs, page.More, nil
}

// Recall recalls one's own chat id in its conversation (cmd 15) and returns the chat as
// recalled.
func (c *Client) Recall(ctx context.Context, id string, v Conv) (*Message, error) {
	r, err := c.request(ctx, packet.CmdCancelMsgReq, v.fields(map[string]any{"id": id}), id)
	if err != nil {
		return nil, err
	}
	m := packet.Chat{ID: packet.Str(id)}
	if err := jsonUnmarshal(r.Data, &m); err != nil {
		return nil, fmt.Errorf("timgw: recall answer: %w", err)
	}
	msg := messageOf(m, false)
	return &msg, nil
}

// OnlineUsers lists the users online (cmd 17 type 0).
func (c *Client) OnlineUsers(ctx context.Context) ([]packet.User, error) {
	r, err := c.request(ctx, packet.CmdGetUserReq, packet.GetUser{UserID: packet.Str(c.User().UserID)}, "")
	if err != nil {
		return nil, err
	}
	var users []packet.User
	if err := jsonUnmarshal(r.Data, &users); err != nil {
		return nil, fmt.Errorf("timgw: users answer: %w", err)
	}
	return users, nil
}

// FetchOffline reads the messages kept while this user was away (cmd 19 type 0) page by
// page, confirming each page with its cursor ("ack") in the next request, and emits those
// not emitted before as Message events with Offline set (recalls as Notice events). It
// returns how many messages it emitted. It runs after every login unless
// Options.NoOfflineFetch; calls are serialized.
func (c *Client) FetchOffline(ctx context.Context) (int, error) {
	c.offline.Lock()
	defer c.offline.Unlock()
	var ack json.RawMessage
	emitted := 0
	for {
		body := map[string]any{"userId": c.User().UserID, "type": 0, "count": c.opts.OfflinePageSize}
		if ack != nil {
			body["ack"] = ack
		}
		r, err := c.request(ctx, packet.CmdGetMessageReq, body, "")
		if err != nil {
			return emitted, err
		}
		page, err := decodeMessagePage(r.Data)
		if err != nil {
			return emitted, err
		}
		for _, m := range page.chats {
			if packet.Cmd(m.Cmd) == packet.CmdCancelMsgResp {
				msg := messageOf(m, true)
				c.events.emit(Notice{Kind: "recall", Message: &msg, Offline: true})
			} else if c.emitChat(m, true) {
				emitted++
			}
		}
		if len(page.Cursor) == 0 || string(page.Cursor) == "null" || (len(page.chats) == 0 && !page.More) {
			return emitted, nil
		}
		ack = page.Cursor
	}
}

// messagePage is the data of a cmd 20 answer.
type messagePage struct {
	Friends map[string][]packet.Chat
	Groups  map[string][]packet.Chat
	Cursor  json.RawMessage
	More    bool
	chats   []packet.Chat // Friends and Groups in seq (then time) order
}

func decodeMessagePage(data json.RawMessage) (*messagePage, error) {
	var p messagePage
	if err := jsonUnmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("timgw: messages answer: %w", err)
	}
	for _, list := range p.Friends {
		p.chats = append(p.chats, list...)
	}
	for gid, list := range p.Groups {
		for _, m := range list {
			if m.GroupID == "" {
				m.GroupID = packet.Str(gid)
			}
			p.chats = append(p.chats, m)
		}
	}
	slices.SortStableFunc(p.chats, func(a, b packet.Chat) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.CreateTime, b.CreateTime))
	})
	return &p, nil
}
