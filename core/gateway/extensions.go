package gateway

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
)

// Typing signals are rate-limited per connection by a token bucket: typingRate signals a
// second on average, typingBurst at once. A client sends one when typing starts and
// when it pauses, so honest clients stay far below it.
const (
	typingRate     = 5
	typingBurst    = 10
	maxTypingState = 32
)

// leave runs cmd 21: the caller leaves a group. Its members are told (cmd 10) as when a
// member's last connection closes, within groups.notice_max_members.
func (g *Gateway) leave(c Conn, cl *client, l packet.LeaveGroup) {
	gid := strings.TrimSpace(string(l.GroupID))
	if gid == "" {
		g.fail(c, packet.CmdLeaveGroupResp, packet.StatusInvalidBody, "groupId must not be empty")
		return
	}
	grp, _ := g.reg.Group(gid)
	notify := g.membershipNotices(gid) // counted before the leave, as for a disconnect
	if !g.reg.Leave(gid, cl.userID) {
		g.fail(c, packet.CmdLeaveGroupResp, packet.StatusNotGroupMember, fmt.Sprintf("%s is not a member of group %s", cl.userID, gid))
		return
	}
	if err := g.store.Leave(context.Background(), gid, cl.userID); err != nil {
		g.log.Warn("storage: group leave not remembered", "group", gid, "user", cl.userID, "err", err)
	}
	r := packet.NewResponse(packet.CmdLeaveGroupResp, packet.StatusOK)
	ok := 1
	r.Result, r.Group, r.Data = &ok, &grp, grp
	g.reply(c, r)
	if notify {
		u, _ := g.reg.User(cl.userID)
		g.notifyGroup(context.Background(), gid, packet.MustEncode(packet.CmdExitGroupNotify,
			packet.GroupNotice{Cmd: packet.CmdExitGroupNotify, User: u, Group: grp}), c.ID())
	}
}

// typing runs cmd 23: a live signal to a peer's connections or a group's members (the
// sender's other connections included), never stored. An accepted signal has no
// answer; a refused one is answered in a cmd 23 packet with the code.
func (g *Gateway) typing(c Conn, cl *client, t packet.Typing) {
	if !cl.typingAllowed(time.Now()) {
		g.fail(c, packet.CmdTypingReq, packet.StatusRateLimited,
			fmt.Sprintf("typing signals are limited to %d a second (bursts of %d)", typingRate, typingBurst))
		return
	}
	if t.State == "" {
		t.State = "typing"
	}
	if len(t.State) > maxTypingState {
		g.fail(c, packet.CmdTypingReq, packet.StatusInvalidBody, fmt.Sprintf("state of %d bytes exceeds %d", len(t.State), maxTypingState))
		return
	}
	var receivers []string
	switch {
	case t.GroupID != "" && t.To != "":
		g.fail(c, packet.CmdTypingReq, packet.StatusNoReceiver, "typing names both to and groupId: give one")
		return
	case t.GroupID != "":
		if !g.reg.IsMember(string(t.GroupID), cl.userID) {
			g.fail(c, packet.CmdTypingReq, packet.StatusNotGroupMember, fmt.Sprintf("%s is not a member of group %s", cl.userID, t.GroupID))
			return
		}
		receivers, _ = g.reg.MembersView(string(t.GroupID))
	case t.To != "":
		receivers = []string{string(t.To), cl.userID} // the sender's other devices too
	default:
		g.fail(c, packet.CmdTypingReq, packet.StatusNoReceiver, "typing needs to (a peer) or groupId")
		return
	}
	n := packet.Typing{Cmd: packet.CmdTypingNotify, From: packet.Str(cl.userID), To: t.To, GroupID: t.GroupID, State: t.State}
	g.push(context.Background(), router.Envelope{Kind: router.KindNotice,
		Notice: packet.MustEncode(packet.CmdTypingNotify, n), Receivers: receivers, SkipConn: c.ID()})
}

// typingAllowed takes a token from the connection's typing bucket. Calls for one
// connection come one at a time (the handler's ordering), so it needs no lock.
func (cl *client) typingAllowed(now time.Time) bool {
	m := cl.extra()
	b := &m.typing
	if !m.typingOn {
		*b = typingBucket{tokens: typingBurst, at: now}
		m.typingOn = true
	}
	b.tokens = min(typingBurst, b.tokens+now.Sub(b.at).Seconds()*typingRate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// typingBucket is a token bucket of typing signals.
type typingBucket struct {
	tokens float64
	at     time.Time
}
