package hook

// EventRequest is a webhook event (docs/webhooks.md) before it is queued: the event
// point's view of it. Scripts read it and may add fields to EventReply.Extra.
type EventRequest struct {
	// Type is the event type ("message.offline", "user.online", ...).
	Type string
	// ID, Time (ms since the epoch) and Node are the event's.
	ID   string
	Time int64
	Node string
	// User is who came online or went offline (user.*).
	User string
	// Message is the chat (message.*); nil for user.*.
	Message *EventMessage
	// OfflineUsers and Members (message.offline) are the offline receivers and the
	// group's size; Code and Reason (message.refused) the refusal.
	OfflineUsers []string
	Members      int
	Code         int
	Reason       string
}

// EventMessage is the chat an event carries.
type EventMessage struct {
	ID, From, To, GroupID string
	ChatType, MsgType     int64
	Content               string
	Seq                   int64
}

// EventReply is the outcome of the event point. The zero reply delivers the event
// unchanged.
type EventReply struct {
	// Drop suppresses the event: it is not queued nor delivered.
	Drop bool
	// Extra holds the fields the scripts added: JSON-like values (string, float64,
	// bool, []any, map[string]any). nil or empty: none. It goes into the event as
	// "extra".
	Extra map[string]any
	// Script is the script that dropped the event ("" otherwise).
	Script string
}
