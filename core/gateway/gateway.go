// Package gateway is timgw's command layer: it receives packets from connections of any
// protocol, runs the t-im commands (login, auth, join, chat, heartbeat, close, get user,
// queries) against the session registry, the authenticator and the router, and answers.
// It also serves the core to the HTTP API. Data flows one way: transport → gateway →
// router → delivery seam → connections.
package gateway

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// Authenticator decides who a client is. Called from many goroutines.
type Authenticator interface {
	// Authenticate checks credentials. An identity with an empty UserID accepts the
	// credentials without logging in (open mode's cmd 3). An error refuses them; its
	// message is shown to the client.
	Authenticate(ctx context.Context, c auth.Credentials) (auth.Identity, error)
}

var (
	_ Authenticator = auth.Open{}
	_ Authenticator = (*auth.JWT)(nil)
)

// Conn is a client connection as the gateway sees it (implemented by transport.Conn).
type Conn interface {
	session.Conn
	RemoteAddr() string
}

// Options configure a Gateway.
type Options struct {
	Registry      *session.Registry
	Router        *router.Router
	Authenticator Authenticator
	Logger        *slog.Logger
	// Storage persists chats' side data and answers cmd 15 and 19; nil: persistence off.
	Storage Storage
	// Hooks are the Lua hooks run on connections, logins, chats and joins; nil: none.
	Hooks hook.Runner
}

// Gateway runs the t-im commands.
type Gateway struct {
	reg    *session.Registry
	router *router.Router
	authn  atomic.Pointer[authBox]
	log    *slog.Logger
	store  Storage // nil: persistence off
	hooks  hook.Runner
}

type authBox struct{ a Authenticator }

// New returns a gateway.
func New(o Options) *Gateway {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	g := &Gateway{reg: o.Registry, router: o.Router, log: o.Logger, store: o.Storage, hooks: o.Hooks}
	g.SetAuthenticator(o.Authenticator)
	return g
}

// SetAuthenticator swaps the authenticator for new logins (config reload).
func (g *Gateway) SetAuthenticator(a Authenticator) { g.authn.Store(&authBox{a}) }

func (g *Gateway) authenticator() Authenticator { return g.authn.Load().a }

// client is the gateway's state of one connection.
type client struct {
	userID string
}

func state(c Conn, v *any) *client {
	if cl, ok := (*v).(*client); ok {
		return cl
	}
	cl := &client{}
	*v = cl
	return cl
}

// send answers a connection, logging failures at debug level (a closing connection).
func (g *Gateway) send(c Conn, p packet.Packet) {
	if err := c.Send(p); err != nil {
		g.log.Debug("send failed", "conn", c.ID(), "cmd", p.Cmd, "err", err)
	}
}

func (g *Gateway) reply(c Conn, r *packet.Response) { g.send(c, packet.ResponsePacket(r)) }

func (g *Gateway) fail(c Conn, cmd packet.Cmd, code packet.Status, msg string) {
	g.send(c, packet.ErrorPacket(cmd, code, msg))
}

// sendToUser queues p to every connection of userID except skip.
func (g *Gateway) sendToUser(userID string, p packet.Packet, skip uint64) {
	var buf [8]session.Conn
	for _, c := range g.reg.Conns(userID, buf[:0]) {
		if c.ID() != skip {
			_ = c.Send(p)
		}
	}
}

// notifyGroup queues p to every online member of groupID except skip's connection.
func (g *Gateway) notifyGroup(groupID string, p packet.Packet, skip uint64) {
	members, _ := g.reg.Members(groupID, nil)
	for _, m := range members {
		g.sendToUser(m, p, skip)
	}
}
