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

// conversationEntry is one conversation of a cmd 29 answer.
type conversationEntry struct {
	Type    string      `json:"type"` // "private" or "group"
	Peer    string      `json:"peer,omitempty"`
	GroupID string      `json:"groupId,omitempty"`
	Name    string      `json:"name,omitempty"` // the peer's nick or the group's name, when known
	Last    packet.Chat `json:"last"`
	LastSeq int64       `json:"lastSeq"`
	Unread  int64       `json:"unread"`
	// The caller's cursors, and the peer's (private conversations only).
	Delivered     int64  `json:"delivered"`
	Read          int64  `json:"read"`
	PeerDelivered *int64 `json:"peerDelivered,omitempty"`
	PeerRead      *int64 `json:"peerRead,omitempty"`
}

// conversationsPage is the data of a cmd 29 answer.
type conversationsPage struct {
	Conversations []conversationEntry `json:"conversations"`
	// Next is the before of the next page; absent on the last page.
	Next int64 `json:"next,omitempty"`
}

// receipt runs cmd 25: the caller's delivered and read cursors of a conversation are
// raised (and its offline entries up to the delivered seq removed). The answer (cmd 26)
// carries the cursors as stored; the conversation's other side is told with cmd 27: the
// peer's connections and the caller's other ones, or the group's members within
// groups.notice_max_members (else only the caller's other connections).
func (g *Gateway) receipt(ctx context.Context, c Conn, cl *client, r packet.Receipt) {
	peer, group := strings.TrimSpace(string(r.To)), strings.TrimSpace(string(r.GroupID))
	switch {
	case peer != "" && group != "":
		g.fail(c, packet.CmdReceiptResp, packet.StatusNoReceiver, "a receipt names both to and groupId: give one")
		return
	case peer == "" && group == "":
		g.fail(c, packet.CmdReceiptResp, packet.StatusNoReceiver, "a receipt needs to (a peer) or groupId")
		return
	case r.Delivered < 0 || r.Read < 0:
		g.fail(c, packet.CmdReceiptResp, packet.StatusInvalidBody, "delivered and read are seqs: not negative")
		return
	case r.Delivered == 0 && r.Read == 0:
		g.fail(c, packet.CmdReceiptResp, packet.StatusInvalidBody, "a receipt needs delivered or read (a seq)")
		return
	case group != "" && !g.reg.IsMember(group, cl.userID):
		g.fail(c, packet.CmdReceiptResp, packet.StatusNotGroupMember, fmt.Sprintf("%s is not a member of group %s", cl.userID, group))
		return
	}
	cur, err := g.store.Receipt(ctx, store.ReceiptQuery{User: cl.userID, Peer: peer, Group: group,
		Delivered: int64(r.Delivered), Read: int64(r.Read)})
	if err != nil {
		g.log.Warn("receipt", "user", cl.userID, "err", err)
		code := storageStatus(err, packet.StatusStorageUnavailable)
		if errors.Is(err, store.ErrInvalid) {
			code = packet.StatusInvalidBody
		}
		g.fail(c, packet.CmdReceiptResp, code, err.Error())
		return
	}
	data := packet.Receipt{To: packet.Str(peer), GroupID: packet.Str(group), Delivered: packet.Int(cur.Delivered), Read: packet.Int(cur.Read)}
	resp := packet.NewResponse(packet.CmdReceiptResp, packet.StatusOK)
	resp.Data = data
	g.reply(c, resp)

	receivers := []string{cl.userID} // the reader's other devices
	switch {
	case peer != "" && peer != cl.userID:
		receivers = append(receivers, peer)
	case group != "" && g.membershipNotices(group):
		receivers, _ = g.reg.MembersView(group)
	}
	data.Cmd, data.From = packet.CmdReceiptNotify, packet.Str(cl.userID)
	g.push(ctx, router.Envelope{Kind: router.KindNotice, Notice: packet.MustEncode(packet.CmdReceiptNotify, data),
		Receivers: receivers, SkipConn: c.ID()})
}

// conversations runs cmd 28: a page of the caller's conversations, newest first, with
// the last chat, the unread count and the cursors of both sides (cmd 29).
func (g *Gateway) conversations(ctx context.Context, c Conn, cl *client, q packet.ConversationsQuery) {
	if q.Limit < 0 || q.Before < 0 {
		g.fail(c, packet.CmdConversationsResp, packet.StatusInvalidBody, "limit and before must not be negative")
		return
	}
	page, err := g.store.Conversations(ctx, store.ConversationsQuery{User: cl.userID, Groups: g.reg.Groups(cl.userID),
		Count: int64(q.Limit), Before: int64(q.Before)})
	if err != nil {
		g.log.Warn("conversations", "user", cl.userID, "err", err)
		g.fail(c, packet.CmdConversationsResp, storageStatus(err, packet.StatusGetMessageFailed), err.Error())
		return
	}
	data := conversationsPage{Conversations: make([]conversationEntry, 0, len(page.Conversations)), Next: page.Next}
	for _, cv := range page.Conversations {
		e := conversationEntry{Type: "private", Peer: cv.Peer, GroupID: cv.Group, Last: cv.Last, LastSeq: cv.Last.Seq,
			Unread: cv.Unread, Delivered: cv.Mine.Delivered, Read: cv.Mine.Read}
		if cv.Group != "" {
			e.Type = "group"
			if grp, ok := g.reg.Group(cv.Group); ok {
				e.Name = grp.Name
			}
		} else {
			if u, ok := g.reg.User(cv.Peer); ok {
				e.Name = u.Nick
			}
			e.PeerDelivered, e.PeerRead = &cv.PeerCursor.Delivered, &cv.PeerCursor.Read
		}
		data.Conversations = append(data.Conversations, e)
	}
	r := packet.NewResponse(packet.CmdConversationsResp, packet.StatusOK)
	r.Data = data
	g.reply(c, r)
}
