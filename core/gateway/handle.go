package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
	"github.com/timgw/timgw/core/webhook"
)

// Opened is called first for every connection. For one connection, Opened, Packet and
// Closed come one at a time and in order; calls for different connections run
// concurrently (from the transport's worker pool).
func (g *Gateway) Opened(c Conn) {
	*c.State() = &client{}
	g.connectHook(c)
}

// Closed is called last, once, with the reason the connection ended: it logs the user
// out and tells its groups when it went offline.
func (g *Gateway) Closed(c Conn, reason string) {
	cl := state(c)
	if cl.userID == "" {
		return
	}
	user := cl.userID
	g.logout(c, cl)
	g.disconnectHook(c, user, reason)
}

func (g *Gateway) logout(c Conn, cl *client) {
	user := cl.userID
	cl.userID = ""
	if !g.reg.Unbind(user, c) || g.presence.Online(user) {
		return // still online here, or on another node of the cluster
	}
	g.emitUser(webhook.TypeUserOffline, user)
	u, _ := g.reg.User(user)
	for _, gid := range g.reg.Groups(user) {
		if !g.membershipNotices(gid) {
			continue
		}
		grp, _ := g.reg.Group(gid)
		g.notifyGroup(context.Background(), gid, packet.MustEncode(packet.CmdExitGroupNotify,
			packet.GroupNotice{Cmd: packet.CmdExitGroupNotify, User: u, Group: grp}), 0)
	}
}

// Packet runs one t-im command from c.
func (g *Gateway) Packet(c Conn, p packet.Packet) {
	g.handle(context.Background(), c, state(c), p)
}

func (g *Gateway) handle(ctx context.Context, c Conn, cl *client, p packet.Packet) {
	if cl.pipelined() != nil && (p.Cmd != packet.CmdChatReq || g.stopping.Load()) {
		// Chats of this connection are on their way to the store: a query must see them
		// stored, and every answer keeps the order of the requests.
		if l, ok := c.(laterConn); ok && l.AfterAnswers() {
			return
		}
	}
	if g.stopping.Load() && g.refuseStopping(c, p) {
		return
	}
	switch p.Cmd {
	case packet.CmdHandshakeReq:
		var h packet.Handshake
		_ = packet.Decode(p.Body, &h) // a handshake body is optional
		g.send(c, packet.MustEncode(packet.CmdHandshakeResp, packet.Handshake{Cmd: packet.Int(packet.CmdHandshakeResp), HByte: h.HByte}))
	case packet.CmdHeartbeatReq:
		var h packet.Heartbeat
		_ = packet.Decode(p.Body, &h) // a heartbeat body is optional
		g.send(c, packet.MustEncode(packet.CmdHeartbeatReq, packet.Heartbeat{Cmd: packet.Int(packet.CmdHeartbeatReq), HBByte: h.HBByte}))
	case packet.CmdAuthReq:
		var a packet.Auth
		if !g.decode(c, p, &a) {
			return
		}
		g.login(ctx, c, cl, packet.CmdAuthResp, hook.SourceAuth, auth.Credentials{Token: a.Token})
	case packet.CmdLoginReq:
		var l packet.Login
		if !g.decode(c, p, &l) {
			return
		}
		g.login(ctx, c, cl, packet.CmdLoginResp, hook.SourceLogin, auth.Credentials{UserID: string(l.UserID), Password: l.Password, Token: l.Token})
	case packet.CmdJoinGroupReq:
		var j packet.JoinGroup
		if g.decode(c, p, &j) && g.loggedIn(c, cl, p.Cmd) {
			g.join(c, cl, j)
		}
	case packet.CmdChatReq:
		var m packet.Chat
		if g.decodeChat(c, p, &m) && g.loggedIn(c, cl, p.Cmd) {
			g.chatConn(ctx, c, cl, router.Sender{UserID: cl.userID, ConnID: c.ID()}, &m)
		}
	case packet.CmdCloseReq:
		var x packet.Close
		if !g.decode(c, p, &x) {
			return
		}
		if x.UserID != "" && string(x.UserID) != cl.userID {
			g.fail(c, packet.CmdCloseReq, packet.StatusForbidden,
				fmt.Sprintf("cannot close %q: a client closes only its own connection", x.UserID))
			return
		}
		c.Close("client asked to close (cmd 14)")
	case packet.CmdGetUserReq:
		var q packet.GetUser
		if g.decode(c, p, &q) && g.loggedIn(c, cl, p.Cmd) {
			g.getUsers(c, cl, q)
		}
	case packet.CmdCancelMsgReq:
		if g.loggedIn(c, cl, p.Cmd) {
			g.recallReq(ctx, c, cl, p)
		}
	case packet.CmdGetMessageReq:
		if g.loggedIn(c, cl, p.Cmd) {
			g.getMessages(ctx, c, cl, p)
		}
	case packet.CmdLeaveGroupReq:
		var l packet.LeaveGroup
		if g.decode(c, p, &l) && g.loggedIn(c, cl, p.Cmd) {
			g.leave(c, cl, l)
		}
	case packet.CmdTypingReq:
		var t packet.Typing
		if g.decode(c, p, &t) && g.loggedIn(c, cl, p.Cmd) {
			g.typing(c, cl, t)
		}
	case packet.CmdReceiptReq:
		var r packet.Receipt
		if g.decode(c, p, &r) && g.loggedIn(c, cl, p.Cmd) {
			g.receipt(ctx, c, cl, r)
		}
	case packet.CmdConversationsReq:
		var q packet.ConversationsQuery
		if g.decode(c, p, &q) && g.loggedIn(c, cl, p.Cmd) {
			g.conversations(ctx, c, cl, q)
		}
	default:
		if p.Cmd.Valid() {
			g.fail(c, p.Cmd, packet.StatusUnsupportedCmd, fmt.Sprintf("cmd %d (%s) is sent by the server, not accepted from clients", p.Cmd, p.Cmd))
			return
		}
		g.fail(c, p.Cmd, packet.StatusUnsupportedCmd, fmt.Sprintf("unsupported cmd %d", p.Cmd))
	}
}

// decode unmarshals a body, answering 10020 on failure (10036 for invalid UTF-8).
func (g *Gateway) decode(c Conn, p packet.Packet, v any) bool {
	if err := packet.Decode(p.Body, v); err != nil {
		g.fail(c, p.Cmd.Response(), packet.DecodeStatus(err), err.Error())
		return false
	}
	return true
}

// decodeChat is decode for a cmd 11 body. The transport hands each packet's body to the
// handler alone (codecs make a fresh body per packet, and nothing writes to it once
// decoded), so the chat's strings share the body's memory rather than a copy of it.
func (g *Gateway) decodeChat(c Conn, p packet.Packet, m *packet.Chat) bool {
	if err := packet.DecodeChatOwned(p.Body, m); err != nil {
		g.fail(c, p.Cmd.Response(), packet.DecodeStatus(err), err.Error())
		return false
	}
	return true
}

func (g *Gateway) loggedIn(c Conn, cl *client, cmd packet.Cmd) bool {
	if cl.userID != "" {
		return true
	}
	g.fail(c, cmd.Response(), packet.StatusNotLoggedIn, fmt.Sprintf("%s needs a logged-in connection: send cmd 5 (login) or cmd 3 (auth) first", cmd))
	return false
}

func (g *Gateway) login(ctx context.Context, c Conn, cl *client, resp packet.Cmd, source string, cred auth.Credentials) {
	okCode, failCode := packet.StatusLoginOK, packet.StatusLoginFailed
	if resp == packet.CmdAuthResp {
		okCode, failCode = packet.StatusAuthOK, packet.StatusAuthFailed
	}
	id, decided, err := g.authHook(ctx, c, source, cred)
	if !decided {
		id, err = g.authenticator().Authenticate(ctx, cred)
	}
	if err == nil && id.UserID != "" {
		err = g.authenticatedHook(ctx, c, source, id, decided)
	}
	if ref := (*refusal)(nil); errors.As(err, &ref) && ref.code != 0 {
		failCode = ref.code
	}
	if err != nil {
		msg := err.Error()
		if !errors.Is(err, auth.ErrDenied) {
			g.log.Warn("authenticator failed", "conn", c.ID(), "err", err)
			msg = "authentication unavailable"
		}
		g.log.Info("login refused", "conn", c.ID(), "proto", c.Protocol(), "remote", c.Transport().RemoteAddr, "reason", msg)
		g.fail(c, resp, failCode, msg)
		return
	}
	r := packet.NewResponse(resp, okCode)
	if id.UserID == "" {
		r.Msg = "token accepted; log in with cmd 5 to choose a user id"
		g.reply(c, r)
		return
	}
	if cl.userID != "" && cl.userID != id.UserID {
		g.logout(c, cl)
	}
	cl.userID = id.UserID
	known := g.reg.Known(id.UserID)
	elsewhere := g.wants(webhook.TypeUserOnline) && g.presence.Online(id.UserID) // before Bind: on another node
	if g.reg.Bind(id.UserID, c, session.Profile{Nick: id.Nick, Avatar: id.Avatar}) && !elsewhere {
		g.emitUser(webhook.TypeUserOnline, id.UserID)
	}
	g.remember(ctx, id.UserID, id.Nick, id.Avatar, known)
	for _, gid := range id.Groups {
		if gid = strings.TrimSpace(gid); gid != "" && g.reg.Join(gid, "", id.UserID) {
			g.rememberJoin(ctx, gid, "", id.UserID)
		}
	}
	u, _ := g.reg.User(id.UserID)
	r.Data, r.User, r.Token = u, &u, id.Token
	g.reply(c, r)
	g.log.Debug("logged in", "conn", c.ID(), "user", id.UserID, "proto", c.Protocol())
}

func (g *Gateway) join(c Conn, cl *client, j packet.JoinGroup) {
	gid := strings.TrimSpace(string(j.GroupID))
	if gid == "" || len(gid) > auth.MaxUserIDLen {
		g.fail(c, packet.CmdJoinGroupResp, packet.StatusJoinGroupFailed, "groupId must be 1 to 128 bytes")
		return
	}
	if deny, reason := g.joinHook(c, cl.userID, gid, j.Name); deny {
		g.fail(c, packet.CmdJoinGroupResp, packet.StatusJoinGroupFailed, reason)
		return
	}
	added := g.reg.Join(gid, j.Name, cl.userID)
	if added {
		g.rememberJoin(context.Background(), gid, j.Name, cl.userID)
	}
	grp, _ := g.reg.Group(gid)
	r := packet.NewResponse(packet.CmdJoinGroupResp, packet.StatusJoinGroupOK)
	ok := 1
	r.Result, r.Group, r.Data = &ok, &grp, grp
	g.reply(c, r)
	if added && g.membershipNotices(gid) {
		u, _ := g.reg.User(cl.userID)
		g.notifyGroup(context.Background(), gid, packet.MustEncode(packet.CmdJoinGroupNotify,
			packet.GroupNotice{Cmd: packet.CmdJoinGroupNotify, User: u, Group: grp}), c.ID())
	}
}

func (g *Gateway) getUsers(c Conn, cl *client, q packet.GetUser) {
	if q.UserID != "" && string(q.UserID) != cl.userID {
		g.fail(c, packet.CmdGetUserResp, packet.StatusForbidden, fmt.Sprintf("userId %q is not the logged-in user", q.UserID))
		return
	}
	var code packet.Status
	switch q.Type {
	case 0:
		code = packet.StatusGetOnlineOK
	case 1:
		code = packet.StatusGetOfflineOK
	case 2:
		code = packet.StatusGetUserOK
	default:
		g.fail(c, packet.CmdGetUserResp, packet.StatusGetUserFailed, fmt.Sprintf("type %d is not 0 (online), 1 (offline) or 2 (all)", int64(q.Type)))
		return
	}
	users := g.presence.Users(session.Filter(q.Type))
	if users == nil {
		users = []packet.User{}
	}
	r := packet.NewResponse(packet.CmdGetUserResp, code)
	r.Data = users
	g.reply(c, r)
}
