package httpapi

import (
	"context"
	"errors"

	"github.com/timgw/timgw/core/packet"
)

// Gateway is what the HTTP API needs from the core. Its methods are called from many
// goroutines at once, one call per HTTP request, with the request's context (cancelled
// when the request times out or the server shuts down).
type Gateway interface {
	// Send routes chat as if user from had sent it. from is trusted: the caller holds an
	// API key. chat has been decoded (chat.From is set to from, chat.Cmd to 11) but its
	// content is not checked against the limits and rules: that is the core's job, as for
	// a chat from a client. Send returns what a client would get as cmd 12: code 10000
	// (accepted and delivered), 10001 (receiver offline, kept for later) or an error code
	// (10024 no receiver, 10025 not a group member, 10026 too large, 10027 rejected,
	// 10028 rate limited, 10030 storage unavailable, ...). A nil response is answered as
	// 10002 (send failed).
	Send(ctx context.Context, from string, chat *packet.Chat) *packet.Response

	// Users lists the users in the given presence state (the `type` of cmd 17).
	Users(ctx context.Context, p Presence) ([]packet.User, error)

	// Connections returns how many live connections userID has (0: offline).
	Connections(ctx context.Context, userID string) (int, error)

	// GroupMembers returns one page of a group's members: up to limit user ids (0: the
	// configured page size; more than it is capped to it) that sort after after, in byte
	// order. An unknown group is an error that wraps ErrNotFound.
	GroupMembers(ctx context.Context, groupID, after string, limit int) (MembersPage, error)

	// Kick closes every connection of userID, telling the client reason where the
	// protocol can, and returns how many it closed (0 when the user is offline).
	Kick(ctx context.Context, userID, reason string) (int, error)
}

// Recaller is implemented by a Gateway that can recall stored chats as an administrator.
// When the Gateway given to New implements it, POST /api/v1/messages/recall serves it;
// otherwise that endpoint answers 404. Called from many goroutines.
type Recaller interface {
	// Recall recalls the chat id sent by from in the conversation with to (private) or in
	// groupID, with no recall window; by names who asked. The response's code is 10000,
	// or 10020, 10022, 10030, 10031.
	Recall(ctx context.Context, from, id, to, groupID, by string) *packet.Response
}

// StatsSource is implemented by a Gateway that can report its load. When the Gateway
// given to New implements it, GET /api/v1/stats serves it; otherwise that endpoint
// answers 404.
type StatsSource interface {
	Stats(ctx context.Context) Stats
}

// Stats is a snapshot of the gateway's load.
type Stats struct {
	// Connections counts open connections by protocol ("tcp", "ws", "http", ...).
	Connections map[string]int `json:"connections"`
	// OnlineUsers counts users with at least one connection.
	OnlineUsers int `json:"onlineUsers"`
}

// Presence selects users by whether they are connected. Its values are those of the
// `type` field of cmd 17 (GET_USER_REQ).
type Presence int

// Presence values.
const (
	PresenceOnline  Presence = 0 // users with at least one connection
	PresenceOffline Presence = 1 // known users with none
	PresenceAll     Presence = 2 // both
)

// String returns the name used in the `status` query parameter.
func (p Presence) String() string {
	switch p {
	case PresenceOnline:
		return "online"
	case PresenceOffline:
		return "offline"
	case PresenceAll:
		return "all"
	}
	return "unknown"
}

// Errors a Gateway returns (wrapped or as they are) to choose the answer.
var (
	// ErrNotFound: the user, group or object named does not exist (404, code 10031).
	ErrNotFound = errors.New("not found")
	// ErrPersistenceOff: the answer needs storage and none is configured, e.g. listing
	// offline users (501, code 10022).
	ErrPersistenceOff = errors.New("persistence is off")
)

// Any other error from a Gateway method is answered 503 with code 10030 (storage
// unavailable), or code 10034 (server busy) when it is a context error.

// MembersPage is one page of a group's members.
type MembersPage struct {
	// Members are user ids in byte order.
	Members []string
	// Total is the group's member count.
	Total int
	// Next is the after of the following page; "" on the last page.
	Next string
}
