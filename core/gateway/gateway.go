// Package gateway is timgw's command layer: it receives packets from connections of any
// protocol, runs the t-im commands (login, auth, join, chat, heartbeat, close, get user,
// queries) against the session registry, the authenticator and the router, and answers.
// Data flows one way: transport → gateway → router → delivery seam → connections. Every
// push to a connection other than the answer to the connection's own request (chats,
// join and leave notices, recall notices, kicks) goes through the delivery seam
// (router.Deliverer), so that a stage wrapping it (storage, the cluster bus) sees it.
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
	"github.com/timgw/timgw/core/store"
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

// Conn is a client connection as the command layer sees it (transport.Conn implements
// it; so do test doubles).
type Conn interface {
	session.Conn
	// Transport says how the connection reached the gateway.
	Transport() session.Transport
	// State is the command layer's slot for its per-connection state. The calls for one
	// connection come one at a time (see Opened), so the slot needs no lock.
	State() *any
}

// Presence answers who is online: this node's registry, or in a cluster the merged view
// of every node. Called from many goroutines.
type Presence interface {
	// Users lists the users in a presence state (the type of cmd 17).
	Users(f session.Filter) []packet.User
	// Online reports whether userID has a connection (in a cluster: on any node).
	Online(userID string) bool
}

var _ Presence = (*session.Registry)(nil)

// Options configure a Gateway.
type Options struct {
	Registry *session.Registry
	// Presence answers cmd 17; nil: Registry (one node).
	Presence      Presence
	Router        *router.Router
	Authenticator Authenticator
	Logger        *slog.Logger
	// Storage persists chats' side data and answers cmd 15 and 19; nil: store.Off
	// (persistence off).
	Storage Storage
	// Hooks are the Lua hooks run on connections, logins, chats and joins; nil: hook.Noop.
	Hooks hook.Runner
	// NoticeMaxMembers is the largest group whose members get join and leave notices
	// (cmd 9, cmd 10); 0: any size. See SetNoticeMaxMembers.
	NoticeMaxMembers int
	// Events receives webhook events; nil: none are built.
	Events Events
	// EventGroupMax is the largest group whose offline members a message.offline event
	// lists (webhooks.group_max_members). See SetEventGroupMax.
	EventGroupMax int
	// PipelinedChats is limits.pipelined_chats (0: 1). See SetPipelinedChats.
	PipelinedChats int
}

// Gateway runs the t-im commands.
type Gateway struct {
	reg      *session.Registry
	router   *router.Router
	authn    atomic.Pointer[authBox]
	log      *slog.Logger
	store    Storage
	hooks    hook.Runner
	presence Presence
	// noticeMax is the largest group told of joins and leaves (0: any size).
	noticeMax atomic.Int64
	stopping  atomic.Bool // BeginShutdown was called (shutdown.go)
	// events receives webhook events (nil: none); eventGroupMax bounds their member lists.
	events        Events
	eventGroupMax atomic.Int64
	// pipelined is how many stored chats of one connection may be on their way at once.
	pipelined atomic.Int32
}

type authBox struct{ a Authenticator }

// New returns a gateway.
func New(o Options) *Gateway {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Storage == nil {
		o.Storage = store.Off{}
	}
	if o.Hooks == nil {
		o.Hooks = hook.Noop{}
	}
	if o.Presence == nil {
		o.Presence = o.Registry
	}
	g := &Gateway{reg: o.Registry, router: o.Router, log: o.Logger, store: o.Storage, hooks: o.Hooks, presence: o.Presence}
	g.SetAuthenticator(o.Authenticator)
	g.SetNoticeMaxMembers(o.NoticeMaxMembers)
	g.events = o.Events
	g.SetEventGroupMax(o.EventGroupMax)
	g.SetPipelinedChats(o.PipelinedChats)
	return g
}

// SetPipelinedChats sets how many stored chats of one connection may be on their way to
// the store at once (limits.pipelined_chats, clamped to 1..255). Safe to call while the
// gateway runs (config reload): connections use the new value from their next chat.
func (g *Gateway) SetPipelinedChats(n int) { g.pipelined.Store(int32(min(max(n, 1), 255))) }

// SetNoticeMaxMembers sets the largest group whose members are told of every join and
// leave; above it those notices are not sent, so that filling or emptying a group of N
// members costs O(N) deliveries rather than O(N²). 0: notices at any size. Safe to call
// while the gateway runs (config reload).
func (g *Gateway) SetNoticeMaxMembers(n int) { g.noticeMax.Store(int64(max(n, 0))) }

// SetAuthenticator swaps the authenticator for new logins (config reload).
func (g *Gateway) SetAuthenticator(a Authenticator) { g.authn.Store(&authBox{a}) }

func (g *Gateway) authenticator() Authenticator { return g.authn.Load().a }

// client is the gateway's state of one connection.
type client struct {
	userID string
	// more is what only some connections need, made at first need: an idle connection
	// pays one pointer for it (client stays in the 24-byte size class).
	more *clientMore
}

// clientMore is the per-connection state of the features a connection may never use.
type clientMore struct {
	// typing is the connection's typing-signal bucket (typingOn: it was filled).
	typing   typingBucket
	typingOn bool
	// answers orders the acks of chats answered later (pipelined); pipelining: one was.
	answers    answers
	pipelining bool
}

// extra returns cl.more, made on first use.
func (cl *client) extra() *clientMore {
	if cl.more == nil {
		cl.more = &clientMore{}
	}
	return cl.more
}

// pipelined returns the connection's answer order, nil when it never pipelined a chat.
func (cl *client) pipelined() *answers {
	if cl.more == nil || !cl.more.pipelining {
		return nil
	}
	return &cl.more.answers
}

// state returns the command layer's state of c, creating it on first use.
func state(c Conn) *client {
	v := c.State()
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

// push hands an envelope to the delivery seam; failures are logged (a notice or a kick
// has no sender waiting for an answer).
func (g *Gateway) push(ctx context.Context, env router.Envelope) router.Outcome {
	out, err := g.router.Push(ctx, env)
	if err != nil {
		g.log.Warn("push not delivered", "kind", env.Kind, "receivers", len(env.Receivers), "err", err)
	}
	return out
}

// membershipNotices reports whether groupID is small enough for its members to be told
// of joins and leaves.
func (g *Gateway) membershipNotices(groupID string) bool {
	n := g.noticeMax.Load()
	return n == 0 || int64(g.reg.MemberCount(groupID)) <= n
}

// notifyGroup pushes the notice p to every member of groupID but skip's connection.
func (g *Gateway) notifyGroup(ctx context.Context, groupID string, p packet.Packet, skip uint64) {
	members, _ := g.reg.MembersView(groupID)
	g.push(ctx, router.Envelope{Kind: router.KindNotice, Notice: p, Receivers: members, SkipConn: skip})
}
