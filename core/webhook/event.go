// Package webhook POSTs the gateway's events (a chat stored for an offline receiver, a
// user coming online or going offline, a chat refused by a rule) to HTTP endpoints: push
// services and backends (docs/webhooks.md).
//
// Emit never blocks the caller: an event goes into a bounded channel (full: the event is
// dropped and counted). One spool goroutine runs the hooks' event point on each event
// (Options.Hooks: extra fields, or the event suppressed), then writes events to the queue directory, a
// segment file per batch (written to a temporary file, fsynced, renamed), and hands them
// to the delivery scheduler; a segment is deleted once every event in it was delivered to
// every endpoint that wants it, or given up. Delivery is one POST per event per endpoint,
// signed with HMAC-SHA256, retried with exponential backoff and jitter. On start the
// queue is read back: a restart loses no pending event (delivery is at least once; the
// event id is the idempotency key).
package webhook

// Event types (config.WebhookEvents lists the same names).
const (
	// TypeMessageOffline: a chat was stored for receivers who are offline.
	TypeMessageOffline = "message.offline"
	// TypeMessageRefused: a Lua rule refused a chat.
	TypeMessageRefused = "message.refused"
	// TypeUserOnline: a user's first connection (in a cluster: on any node).
	TypeUserOnline = "user.online"
	// TypeUserOffline: a user's last connection closed.
	TypeUserOffline = "user.offline"
)

// Types are the event types, in the order of config.WebhookEvents.
var Types = []string{TypeMessageOffline, TypeMessageRefused, TypeUserOnline, TypeUserOffline}

// Event is one webhook event: the JSON body of the POST. ID, Time and Node are set by
// Emit.
type Event struct {
	// ID is unique across gateway runs and nodes: the idempotency key of the event.
	ID string `json:"id"`
	// Type is one of the Type constants.
	Type string `json:"type"`
	// Time is when the event happened, in ms since the epoch.
	Time int64 `json:"time"`
	// Node is the cluster node id of the gateway that emitted it ("" without a cluster).
	Node string `json:"node"`
	// User is who came online or went offline (user.*).
	User string `json:"user,omitempty"`
	// Message is the chat (message.*).
	Message *Message `json:"message,omitempty"`
	// OfflineUsers (message.offline) are the receivers who were offline: the receiver
	// of a private chat, or the group's offline members (the sender left out). Left out
	// for a group larger than webhooks.group_max_members.
	OfflineUsers []string `json:"offline_users,omitempty"`
	// Members (message.offline of a group chat) is the group's size.
	Members int `json:"members,omitempty"`
	// Code and Reason (message.refused) are the refusal the sender got (cmd 12).
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Extra holds the fields the event hook's scripts added (Options.Hooks).
	Extra map[string]any `json:"extra,omitempty"`
}

// Message is a chat as events carry it (t-im's field names).
type Message struct {
	ID         string `json:"id"`
	From       string `json:"from"`
	To         string `json:"to,omitempty"`
	GroupID    string `json:"groupId,omitempty"`
	ChatType   int64  `json:"chatType"`
	MsgType    int64  `json:"msgType"`
	Content    string `json:"content"`
	CreateTime int64  `json:"createTime"`
	Seq        int64  `json:"seq,omitempty"`
}
