package gateway

import (
	"context"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// What the command layer offers servers (the HTTP API, wired in core/app): the same
// commands a client has, with the identity given by a trusted caller.

// httpTransport is how HTTP API calls appear to hooks.
var httpTransport = session.Transport{Protocol: "http"}

// Send routes chat as if user from had sent it (hooks, limits and rules apply as for a
// client's chat) and returns the cmd 12 answer. from is trusted: the caller holds an API
// key.
func (g *Gateway) Send(ctx context.Context, from string, chat *packet.Chat) *packet.Response {
	return chatResponse(g.chat(ctx, router.Sender{UserID: from}, httpTransport, chat))
}

// Recall recalls a chat as an administrator (no recall window) and notifies the
// conversation. from and id name the chat; to or groupID its conversation; by names the
// administrator. The answer's code is 10000, 10020 (bad request), 10022 (no storage),
// 10030, or 10031 (no such chat).
func (g *Gateway) Recall(ctx context.Context, from, id, to, groupID, by string) *packet.Response {
	return g.recall(ctx, from, by, packet.CancelMsg{ID: packet.Str(id), To: packet.Str(to), GroupID: packet.Str(groupID)}, true, 0)
}

// Kick closes every connection of userID (on every node, through the delivery seam),
// telling the client reason where the protocol can, and returns how many it closed.
func (g *Gateway) Kick(ctx context.Context, userID, reason string) int {
	if reason == "" {
		reason = "kicked by an administrator"
	}
	out := g.push(ctx, router.Envelope{Kind: router.KindKick, Reason: reason, Receivers: []string{userID}})
	return out.Connections
}

// ReasonErased is the reason erasure (DELETE /admin/users/{id}) closes a user's
// connections with: a WebSocket client reads it in the close frame.
const ReasonErased = "account erased"

// LeaveAll removes userID from every group it belongs to, as cmd 21 does for one group:
// the registry's change reaches every node of a cluster at once, and the members of each
// group within groups.notice_max_members (counted before the leave) are told with cmd 10.
// With remember, each leave is also stored; without it the caller removes the stored
// memberships itself (erasure removes them in one storage call). It returns the groups
// left, sorted.
func (g *Gateway) LeaveAll(ctx context.Context, userID string, remember bool) []string {
	left := []string{}
	for _, gid := range g.reg.Groups(userID) {
		grp, _ := g.reg.Group(gid)
		notify := g.membershipNotices(gid)
		if !g.reg.Leave(gid, userID) {
			continue // left meanwhile
		}
		left = append(left, gid)
		if remember {
			if err := g.store.Leave(ctx, gid, userID); err != nil {
				g.log.Warn("storage: group leave not remembered", "group", gid, "user", userID, "err", err)
			}
		}
		if notify {
			u, _ := g.reg.User(userID) // as cmd 21 tells it: without the group
			g.notifyGroup(ctx, gid, packet.MustEncode(packet.CmdExitGroupNotify,
				packet.GroupNotice{Cmd: packet.CmdExitGroupNotify, User: u, Group: grp}), 0)
		}
	}
	return left
}
