package gateway

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/transport"
)

// runner returns the hooks, or the no-op when none are configured.
func (g *Gateway) runner() hook.Runner {
	if g.hooks == nil {
		return hook.Noop{}
	}
	return g.hooks
}

// connectHook asks the connect hook whether c may stay.
func (g *Gateway) connectHook(c *transport.Conn) {
	proto, tls := c.Protocol(), false
	switch proto {
	case transport.ProtoTLSTCP:
		proto, tls = hook.ProtocolTCP, true
	case transport.ProtoWSS:
		proto, tls = hook.ProtocolWS, true
	default:
		if base, ok := strings.CutSuffix(proto, "+tls"); ok { // a plugin protocol over TLS
			proto, tls = base, true
		}
	}
	rep := g.runner().Connect(context.Background(), &hook.ConnectRequest{Addr: c.RemoteAddr(), Protocol: proto, TLS: tls})
	if rep.Deny {
		g.log.Info("connection denied by a hook", "conn", c.ID(), "remote", c.RemoteAddr(), "script", rep.Script, "reason", rep.Reason)
		c.Close("denied by connect hook: " + rep.Reason)
	}
}

// disconnectHook tells the disconnect hook that user's connection c ended.
func (g *Gateway) disconnectHook(c Conn, user, reason string) {
	g.runner().Disconnect(context.Background(), &hook.DisconnectEvent{User: user, Addr: c.RemoteAddr(), Protocol: c.Protocol(), Reason: reason})
}

// authHook runs the auth hook. decided is false when the hook has no opinion and the
// authenticator decides; otherwise id or err is the hook's verdict.
func (g *Gateway) authHook(ctx context.Context, c Conn, source string, cred auth.Credentials) (id auth.Identity, decided bool, err error) {
	rep := g.runner().Auth(ctx, &hook.AuthRequest{Source: source, UserID: cred.UserID, Password: cred.Password,
		Token: cred.Token, Protocol: c.Protocol(), Addr: c.RemoteAddr()})
	switch rep.Decision {
	case hook.AuthAccept:
		if err := auth.ValidUserID(rep.UserID); err != nil {
			return auth.Identity{}, true, fmt.Errorf("auth hook %s: %w", rep.Script, err)
		}
		return auth.Identity{UserID: rep.UserID, Nick: rep.Nick, Avatar: rep.Avatar, Groups: rep.Groups, Token: cred.Token}, true, nil
	case hook.AuthReject:
		msg := rep.Message
		if msg == "" {
			msg = "refused by a rule"
		}
		return auth.Identity{}, true, fmt.Errorf("%w: %s", auth.ErrDenied, msg)
	}
	return auth.Identity{}, false, nil
}

// chat runs the message hook on a chat from sender and routes what it lets through. It
// returns the cmd 12 response for the sender.
func (g *Gateway) chat(ctx context.Context, from router.Sender, proto, addr string, m *packet.Chat) *packet.Response {
	m.From = packet.Str(from.UserID)
	rep := g.runner().Message(ctx, &hook.MessageRequest{Sender: from.UserID, Protocol: proto, Addr: addr, Chat: m})
	switch rep.Action {
	case hook.MessageReject:
		code := rep.Code
		if code == 0 {
			code = packet.StatusRejected
		}
		resp := packet.NewResponse(packet.CmdChatResp, code)
		if rep.Reason != "" {
			resp.Msg = rep.Reason
		}
		return resp
	case hook.MessageDrop:
		// Answered as if sent, so the sender learns nothing; nothing is stored or delivered.
		if m.ID == "" {
			m.ID = packet.Str(g.router.NewID())
		}
		resp := packet.NewResponse(packet.CmdChatResp, packet.StatusOK)
		now := time.Now().UnixMilli()
		resp.Data = router.Ack{ID: string(m.ID), CreateTime: now, ServerTime: now, To: string(m.To), GroupID: string(m.GroupID)}
		return resp
	case hook.MessageReroute:
		return g.reroute(ctx, from, m, rep)
	}
	return g.router.Route(ctx, from, m)
}

// reroute sends a chat to the receivers a hook chose: a private copy to every user of
// rep.To, and the group rep.GroupID. The sender gets the first accepted answer, or the
// first refusal when none was accepted.
func (g *Gateway) reroute(ctx context.Context, from router.Sender, m *packet.Chat, rep hook.MessageReply) *packet.Response {
	var first, firstOK *packet.Response
	keep := func(r *packet.Response) {
		if first == nil {
			first = r
		}
		if firstOK == nil && (r.Code == packet.StatusOK || r.Code == packet.StatusOffline) {
			firstOK = r
		}
	}
	if rep.GroupID != "" {
		c := *m
		c.ChatType, c.GroupID, c.To = packet.ChatTypeGroup, packet.Str(rep.GroupID), ""
		keep(g.router.Route(ctx, from, &c))
	}
	for i, to := range rep.To {
		c := *m
		c.ChatType, c.To, c.GroupID = packet.ChatTypePrivate, packet.Str(to), ""
		if i > 0 || rep.GroupID != "" {
			c.ID = "" // each copy is its own message
		}
		keep(g.router.Route(ctx, from, &c))
	}
	switch {
	case firstOK != nil:
		return firstOK
	case first != nil:
		return first
	}
	resp := packet.NewResponse(packet.CmdChatResp, packet.StatusNoReceiver)
	resp.Msg = fmt.Sprintf("message hook %s rerouted the chat to no receiver", rep.Script)
	return resp
}

// joinHook asks the join hook whether user may join group; it returns the refusal.
func (g *Gateway) joinHook(c Conn, user, group, name string) (deny bool, reason string) {
	rep := g.runner().Join(context.Background(), &hook.JoinRequest{User: user, Group: group, Name: name, Protocol: c.Protocol(), Addr: c.RemoteAddr()})
	if rep.Deny && rep.Reason == "" {
		rep.Reason = "refused by a rule"
	}
	return rep.Deny, rep.Reason
}
