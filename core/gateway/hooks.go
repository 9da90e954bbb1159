package gateway

import (
	"context"
	"fmt"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// connectHook asks the connect hook whether c may stay.
func (g *Gateway) connectHook(c Conn) {
	t := c.Transport()
	rep := g.hooks.Connect(context.Background(), &hook.ConnectRequest{Addr: t.RemoteAddr, Protocol: t.Protocol, TLS: t.TLS})
	if rep.Deny {
		g.log.Info("connection denied by a hook", "conn", c.ID(), "remote", t.RemoteAddr, "script", rep.Script, "reason", rep.Reason)
		c.Close("denied by connect hook: " + rep.Reason)
	}
}

// disconnectHook tells the disconnect hook that user's connection c ended.
func (g *Gateway) disconnectHook(c Conn, user, reason string) {
	g.hooks.Disconnect(context.Background(), &hook.DisconnectEvent{User: user, Addr: c.Transport().RemoteAddr, Protocol: c.Transport().Protocol, Reason: reason})
}

// authHook runs the auth hook. decided is false when the hook has no opinion and the
// authenticator decides; otherwise id or err is the hook's verdict.
func (g *Gateway) authHook(ctx context.Context, c Conn, source string, cred auth.Credentials) (id auth.Identity, decided bool, err error) {
	rep := g.hooks.Auth(ctx, &hook.AuthRequest{Source: source, UserID: cred.UserID, Password: cred.Password,
		Token: cred.Token, Protocol: c.Transport().Protocol, Addr: c.Transport().RemoteAddr})
	switch rep.Decision {
	case hook.AuthAccept:
		if err := auth.ValidUserID(rep.UserID); err != nil {
			return auth.Identity{}, true, fmt.Errorf("auth hook %s: %w", rep.Script, err)
		}
		return auth.Identity{UserID: rep.UserID, Nick: rep.Nick, Avatar: rep.Avatar, Groups: rep.Groups, Token: cred.Token}, true, nil
	case hook.AuthReject:
		return auth.Identity{}, true, refused(rep)
	}
	return auth.Identity{}, false, nil
}

// authenticatedHook asks the authenticated hook whether the verified identity id may
// log in; byHook tells whether the auth hook accepted it. It returns the refusal.
func (g *Gateway) authenticatedHook(ctx context.Context, c Conn, source string, id auth.Identity, byHook bool) error {
	by := hook.ByAuthenticator
	if byHook {
		by = hook.ByAuthHook
	}
	rep := g.hooks.Authenticated(ctx, &hook.AuthenticatedRequest{Source: source, UserID: id.UserID, Nick: id.Nick,
		Avatar: id.Avatar, Groups: id.Groups, Claims: id.Claims, By: by, Protocol: c.Transport().Protocol, Addr: c.Transport().RemoteAddr})
	if rep.Decision == hook.AuthReject {
		return refused(rep)
	}
	return nil
}

// refusal is a login a hook refused, with the status it chose (0: the default).
type refusal struct {
	code packet.Status
	msg  string
}

func (r *refusal) Error() string { return auth.ErrDenied.Error() + ": " + r.msg }
func (r *refusal) Unwrap() error { return auth.ErrDenied }

// refused is the error of a hook's AuthReject reply.
func refused(rep hook.AuthReply) error {
	msg := rep.Message
	if msg == "" {
		msg = "refused by a rule"
	}
	return &refusal{code: rep.Code, msg: msg}
}

// chatResponse builds the cmd 12 answer to a chat from the router's result: the one
// place it is built, for chats from clients, from the HTTP API and dropped by a hook.
func chatResponse(res router.Result) *packet.Response {
	resp := packet.NewResponse(packet.CmdChatResp, res.Code)
	if res.Msg != "" {
		resp.Msg = res.Msg
	}
	if res.Ack != nil {
		resp.Data = *res.Ack
	}
	return resp
}

// chatAckPacket is the cmd 12 packet of res, as chatResponse builds it: hand-encoded for
// an accepted chat (every chat pays for it), marshaled otherwise.
func chatAckPacket(res router.Result) packet.Packet {
	if a := res.Ack; a != nil && res.Msg == "" {
		body, ok := packet.AppendChatAck(make([]byte, 0, 160+len(a.ID)+len(a.To)+len(a.GroupID)), res.Code,
			packet.ChatAck{ID: a.ID, CreateTime: a.CreateTime, ServerTime: a.ServerTime, Seq: a.Seq, To: a.To,
				GroupID: a.GroupID, Delivered: a.Delivered, Duplicate: a.Duplicate})
		if ok {
			return packet.Packet{Cmd: packet.CmdChatResp, Body: body}
		}
	}
	return packet.ResponsePacket(chatResponse(res))
}

// chat runs the message hook on a chat from sender and routes what it lets through. It
// returns the result for the sender.
func (g *Gateway) chat(ctx context.Context, from router.Sender, t session.Transport, m *packet.Chat) router.Result {
	return g.chatReply(ctx, from, m, g.messageHook(ctx, from, t, m))
}

// messageHook sets the chat's sender and runs the message hook on it.
func (g *Gateway) messageHook(ctx context.Context, from router.Sender, t session.Transport, m *packet.Chat) hook.MessageReply {
	m.From = packet.Str(from.UserID)
	return g.hooks.Message(ctx, &hook.MessageRequest{Sender: from.UserID, Protocol: t.Protocol, Addr: t.RemoteAddr, Chat: m})
}

// chatConn runs the message hook on a chat from connection c and answers it. When the
// hook lets the chat pass as it is (no reroute, no sends) and the delivery seam completes
// later (storage on), the chat is pipelined: the worker goes back to the pool at once, the
// ack comes from the store's callback, and the connection's next chats are handled
// meanwhile (up to limits.pipelined_chats on their way). Acks keep the order the chats
// were read (answers), whichever path each took.
func (g *Gateway) chatConn(ctx context.Context, c Conn, cl *client, from router.Sender, m *packet.Chat) {
	rep := g.messageHook(ctx, from, c.Transport(), m)
	async := g.router.Async() && rep.Action == hook.MessagePass && len(rep.Sends) == 0
	l, ok := c.(laterConn)
	if a := cl.pipelined(); !ok || !async && (a == nil || a.idle()) {
		g.send(c, chatAckPacket(g.chatReply(ctx, from, m, rep)))
		return
	}
	more := cl.extra()
	more.pipelining = true
	a := &more.answers
	t := a.take()
	l.Later(int(g.pipelined.Load()))
	answer := func(p packet.Packet) {
		for range a.give(t, p, func(p packet.Packet) { g.send(c, p) }) {
			l.Answered()
		}
	}
	if !async {
		answer(chatAckPacket(g.chatReply(ctx, from, m, rep)))
		return
	}
	g.router.RouteAsync(ctx, from, m, rep.Also, func(res router.Result) {
		g.emitOffline(from, m, res)
		answer(chatAckPacket(res))
	})
}

// chatReply routes what the message hook's reply rep lets through and returns the result
// for the sender.
func (g *Gateway) chatReply(ctx context.Context, from router.Sender, m *packet.Chat, rep hook.MessageReply) router.Result {
	if len(rep.Sends) > 0 {
		defer g.serviceSends(ctx, rep)
	}
	switch rep.Action {
	case hook.MessageReject:
		code := rep.Code
		if code == 0 {
			code = packet.StatusRejected
		}
		g.emitRefused(m, code, rep.Reason)
		return router.Refused(code, rep.Reason)
	case hook.MessageDrop:
		return g.router.Dropped(m)
	case hook.MessageReroute:
		return g.reroute(ctx, from, m, rep)
	}
	return g.route(ctx, from, m, rep.Also)
}

// serviceSends routes the messages a hook sent as a service identity (tim.send), after
// the message that caused them. Their senders are not connections: nothing answers them,
// so a failure is logged.
func (g *Gateway) serviceSends(ctx context.Context, rep hook.MessageReply) {
	for i := range rep.Sends {
		s := rep.Sends[i]
		res := g.route(ctx, router.Sender{UserID: string(s.From), Service: true}, &s, nil)
		if !res.Accepted() {
			g.log.Warn("hook send not accepted", "script", rep.Script, "from", s.From, "to", s.To, "group", s.GroupID, "code", res.Code, "msg", res.Msg)
		}
	}
}

// reroute sends a chat to the receivers a hook chose: a private copy to every user of
// rep.To, and the group rep.GroupID. The sender gets the first accepted answer, or the
// first refusal when none was accepted.
func (g *Gateway) reroute(ctx context.Context, from router.Sender, m *packet.Chat, rep hook.MessageReply) router.Result {
	var first, firstOK *router.Result
	keep := func(r router.Result) {
		if first == nil {
			first = &r
		}
		if firstOK == nil && r.Accepted() {
			firstOK = &r
		}
	}
	if rep.GroupID != "" {
		c := *m
		c.ChatType, c.GroupID, c.To = packet.ChatTypeGroup, packet.Str(rep.GroupID), ""
		keep(g.route(ctx, from, &c, nil))
	}
	for i, to := range rep.To {
		c := *m
		c.ChatType, c.To, c.GroupID = packet.ChatTypePrivate, packet.Str(to), ""
		if i > 0 || rep.GroupID != "" {
			c.ID = "" // each copy is its own message
		}
		keep(g.route(ctx, from, &c, nil))
	}
	switch {
	case firstOK != nil:
		return *firstOK
	case first != nil:
		return *first
	}
	return router.Refused(packet.StatusNoReceiver, fmt.Sprintf("message hook %s rerouted the chat to no receiver", rep.Script))
}

// joinHook asks the join hook whether user may join group; it returns the refusal.
func (g *Gateway) joinHook(c Conn, user, group, name string) (deny bool, reason string) {
	rep := g.hooks.Join(context.Background(), &hook.JoinRequest{User: user, Group: group, Name: name, Protocol: c.Transport().Protocol, Addr: c.Transport().RemoteAddr})
	if rep.Deny && rep.Reason == "" {
		rep.Reason = "refused by a rule"
	}
	return rep.Deny, rep.Reason
}
