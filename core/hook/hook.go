// Package hook defines the points where timgw asks a rule engine (the Lua hooks of
// core/lua, or any other implementation) for a decision: a connection is accepted,
// a client authenticates (Auth, before its credentials are verified, and
// Authenticated, with the verified identity), a chat message is sent, a user joins a
// group, a connection ends. Each point is a typed request/reply pair and a method of Runner.
//
// Concurrency. The gateway calls a Runner from many goroutines at once (its worker
// pool), for every message. A request is owned by the caller: the Runner reads it, and
// for Message may modify its Chat, only during the call and keeps no reference to it
// afterwards. The caller must not use a request from another goroutine during the call.
// Replies are plain values owned by the caller. Every zero reply means "no opinion":
// allow, pass, no change.
package hook

import "context"

// Point names a hook point. The names are those of the configuration (hooks.<point>)
// and of the metrics' hook label.
type Point string

// The hook points.
const (
	PointConnect    Point = "connect"
	PointAuth       Point = "auth"
	PointMessage    Point = "message"
	PointJoin       Point = "join"
	PointDisconnect Point = "disconnect"
	// PointAuthenticated runs after a successful authentication (auth hook or built-in
	// authenticator), with the verified identity.
	PointAuthenticated Point = "authenticated"
	// PointEvent runs for every webhook event before it is queued (EventRequest).
	PointEvent Point = "event"
)

// Points lists the hook points in a stable order.
var Points = []Point{PointConnect, PointAuth, PointMessage, PointJoin, PointDisconnect, PointAuthenticated, PointEvent}

// Runner is what the gateway calls at each hook point. Implementations are safe for
// concurrent use, never panic into the caller, and return within their configured
// timeout per script (plus the wait for a free interpreter). A failing rule is turned
// into a reply by the implementation's failure policy, never into an error.
//
// ctx is the caller's: an implementation stops waiting for resources when it is done,
// and does not start a script once it is done (the failure policy then decides).
type Runner interface {
	// Connect is called once per accepted connection, after the protocol is known and
	// before anything is read from it.
	Connect(ctx context.Context, req *ConnectRequest) ConnectReply
	// Auth is called for every authentication attempt, before the built-in authenticator.
	Auth(ctx context.Context, req *AuthRequest) AuthReply
	// Authenticated is called after an attempt was accepted (by Auth or the built-in
	// authenticator), with the verified identity, before the session is bound. An
	// AuthReject reply refuses the login; UserID and the profile fields of the reply
	// are ignored.
	Authenticated(ctx context.Context, req *AuthenticatedRequest) AuthReply
	// Message is called for every chat message (cmd 11 and the HTTP send API) after it
	// is decoded and `from` is set to the logged-in user, before it is validated for
	// routing, stored or delivered.
	Message(ctx context.Context, req *MessageRequest) MessageReply
	// Join is called when a user asks to join a group (cmd 7, or groups given at login
	// by the built-in authenticator), before membership is recorded.
	Join(ctx context.Context, req *JoinRequest) JoinReply
	// Disconnect is a notice, called once when a logged-in or anonymous connection
	// ends, after its session is removed. Its outcome changes nothing. Pass a context
	// that outlives the connection (a cancelled one skips the scripts).
	Disconnect(ctx context.Context, ev *DisconnectEvent)
	// Event is called once per webhook event, before it is queued (by the webhook
	// dispatcher, never by the goroutine that emitted it). The reply adds fields to
	// the event or suppresses it.
	Event(ctx context.Context, req *EventRequest) EventReply
}

// Noop is the Runner used when hooks are off: every call returns the zero reply
// (allow, pass) at once.
type Noop struct{}

var _ Runner = Noop{}

// Connect allows.
func (Noop) Connect(context.Context, *ConnectRequest) ConnectReply { return ConnectReply{} }

// Auth has no opinion.
func (Noop) Auth(context.Context, *AuthRequest) AuthReply { return AuthReply{} }

// Authenticated has no opinion.
func (Noop) Authenticated(context.Context, *AuthenticatedRequest) AuthReply { return AuthReply{} }

// Message passes the message unchanged.
func (Noop) Message(context.Context, *MessageRequest) MessageReply { return MessageReply{} }

// Join allows.
func (Noop) Join(context.Context, *JoinRequest) JoinReply { return JoinReply{} }

// Disconnect does nothing.
func (Noop) Disconnect(context.Context, *DisconnectEvent) {}

// Event delivers the event unchanged.
func (Noop) Event(context.Context, *EventRequest) EventReply { return EventReply{} }

// Status reports no scripts.
func (Noop) Status() []ScriptStatus { return nil }
