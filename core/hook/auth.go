package hook

import "github.com/timgw/timgw/core/packet"

// Auth sources: where the credentials of an AuthRequest came from. A WebSocket upgrade
// whose query names a user or token (?username=&password=&token=) is a cmd 5 login.
const (
	SourceAuth  = "auth"  // cmd 3 AUTH_REQ: a token
	SourceLogin = "login" // cmd 5 LOGIN_REQ (or a WebSocket query): userId+password and/or token
)

// AuthRequest carries the credentials of one authentication attempt.
type AuthRequest struct {
	// Source is SourceAuth or SourceLogin.
	Source string
	// UserID is the user id claimed by the client (empty for a token alone).
	UserID string
	// Password is the password sent, if any. Scripts may read it: do not log it.
	Password string
	// Token is the token sent, if any.
	Token string
	// Protocol is ProtocolTCP, ProtocolWS or ProtocolHTTP.
	Protocol string
	// Addr is the remote address, "ip:port".
	Addr string
}

// AuthDecision is the kind of an AuthReply.
type AuthDecision uint8

// Auth decisions.
const (
	// AuthPass: no opinion. The built-in authenticator (config auth.mode) decides.
	AuthPass AuthDecision = iota
	// AuthAccept: the client is logged in as UserID, the built-in authenticator is
	// skipped.
	AuthAccept
	// AuthReject: the attempt fails with Code and Message.
	AuthReject
)

// String returns the decision's name.
func (d AuthDecision) String() string {
	switch d {
	case AuthPass:
		return "pass"
	case AuthAccept:
		return "accept"
	case AuthReject:
		return "reject"
	}
	return "unknown"
}

// AuthReply is the decision on an authentication attempt. The zero value passes.
type AuthReply struct {
	// Decision is AuthPass, AuthAccept or AuthReject.
	Decision AuthDecision
	// UserID is the user logged in (AuthAccept; never empty then).
	UserID string
	// Nick and Avatar describe the user in the login response (AuthAccept; optional).
	Nick, Avatar string
	// Groups are group ids the user joins at login (AuthAccept; optional). The gateway
	// still calls Join for each of them.
	Groups []string
	// Code is the status of the failure response (AuthReject): the script's code, or
	// FailureStatus(Source).
	Code packet.Status
	// Message is the `msg` of the failure response (AuthReject).
	Message string
	// Script is the script that decided (empty when no script had an opinion).
	Script string
}

// FailureStatus is the status a rejected attempt from source answers with when the
// rule names none: 10008 login failed for logins, 10010 auth failed otherwise.
func FailureStatus(source string) packet.Status {
	if source == SourceLogin {
		return packet.StatusLoginFailed
	}
	return packet.StatusAuthFailed
}

// Who authenticated a login (AuthenticatedRequest.By).
const (
	ByAuthHook      = "auth_hook"     // an auth hook script accepted it
	ByAuthenticator = "authenticator" // the built-in authenticator (auth.mode) did
)

// AuthenticatedRequest describes a login that succeeded, after the credentials were
// verified and before the session is bound: the last chance to refuse it.
type AuthenticatedRequest struct {
	// Source is SourceAuth or SourceLogin.
	Source string
	// UserID is the verified user id (the token's subject in jwt mode).
	UserID string
	// Nick, Avatar and Groups are the identity's (from the token or the auth hook).
	Nick, Avatar string
	Groups       []string
	// Claims are the verified token's claims (jwt mode); nil otherwise.
	Claims map[string]any
	// By is ByAuthHook or ByAuthenticator.
	By string
	// Protocol is ProtocolTCP, ProtocolWS or ProtocolHTTP; Addr the remote "ip:port".
	Protocol, Addr string
}
