package gateway

import (
	"context"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/webhook"
)

// Events receives the gateway's events for webhooks (docs/webhooks.md): chats stored for
// offline receivers, users coming online and going offline, chats refused by a rule.
// Called from many goroutines.
type Events interface {
	// Wants reports whether anyone subscribes to events of type typ: the gateway
	// builds only events someone wants.
	Wants(typ string) bool
	// Emit queues an event. It must never block: a chat's ack waits for it.
	Emit(e webhook.Event)
}

var _ Events = (*webhook.Dispatcher)(nil)

// SetEventGroupMax sets the largest group whose offline members a message.offline
// event lists; above it the event leaves them out. 0: never list them. Safe to call
// while the gateway runs (config reload).
func (g *Gateway) SetEventGroupMax(n int) { g.eventGroupMax.Store(int64(max(n, 0))) }

// wants reports whether an event of type typ is to be emitted.
func (g *Gateway) wants(typ string) bool { return g.events != nil && g.events.Wants(typ) }

// emitUser emits user.online or user.offline for user.
func (g *Gateway) emitUser(typ, user string) {
	if g.wants(typ) {
		g.events.Emit(webhook.Event{Type: typ, User: user})
	}
}

// eventMessage is m as events carry it, with the seq and creation time it was stored
// with.
func eventMessage(m *packet.Chat, seq, createTime int64) *webhook.Message {
	if createTime == 0 {
		createTime = int64(m.CreateTime)
	}
	return &webhook.Message{ID: string(m.ID), From: string(m.From), To: string(m.To), GroupID: string(m.GroupID),
		ChatType: int64(m.ChatType), MsgType: int64(m.MsgType), Content: m.Content, CreateTime: createTime, Seq: seq}
}

// emitRefused emits message.refused for a chat a hook refused with code and reason.
func (g *Gateway) emitRefused(m *packet.Chat, code packet.Status, reason string) {
	if g.wants(webhook.TypeMessageRefused) {
		g.events.Emit(webhook.Event{Type: webhook.TypeMessageRefused, Message: eventMessage(m, 0, 0),
			Code: int(code), Reason: reason})
	}
}

// route routes a chat (router.RouteAlso: also get a copy) and emits message.offline for
// it (emitOffline).
func (g *Gateway) route(ctx context.Context, from router.Sender, m *packet.Chat, also []string) router.Result {
	res := g.router.RouteAlso(ctx, from, m, also)
	g.emitOffline(from, m, res)
	return res
}

// emitOffline emits message.offline when the routed chat m (res is the router's answer)
// was stored for receivers who are offline: the receiver of a private chat answered
// 10001, or the members of a group that are offline (the sender left out).
func (g *Gateway) emitOffline(from router.Sender, m *packet.Chat, res router.Result) {
	if !res.Accepted() || res.Ack.Seq == 0 || res.Ack.Duplicate || !g.wants(webhook.TypeMessageOffline) {
		return // refused, storage off (not stored: nothing to fetch later), or a resend
	}
	ev := webhook.Event{Type: webhook.TypeMessageOffline, Message: eventMessage(m, res.Ack.Seq, res.Ack.CreateTime)}
	if m.ChatType != packet.ChatTypeGroup {
		if res.Code == packet.StatusOffline {
			ev.OfflineUsers = []string{string(m.To)}
			g.events.Emit(ev)
		}
		return
	}
	gid := string(m.GroupID)
	ev.Members = g.reg.MemberCount(gid)
	if limit := g.eventGroupMax.Load(); int64(ev.Members) > limit {
		g.events.Emit(ev) // too large to list: the receiver looks the members up itself
		return
	}
	members, _ := g.reg.MembersView(gid)
	for _, u := range members {
		if u != from.UserID && !g.presence.Online(u) {
			ev.OfflineUsers = append(ev.OfflineUsers, u)
		}
	}
	if len(ev.OfflineUsers) > 0 {
		g.events.Emit(ev)
	}
}
