package hook

import "github.com/timgw/timgw/core/packet"

// MessageRequest is one chat message on its way in.
type MessageRequest struct {
	// Sender is the logged-in user id of the sender (Chat.From is already set to it).
	Sender string
	// Protocol is ProtocolTCP, ProtocolWS or ProtocolHTTP.
	Protocol string
	// Addr is the sender's remote address (empty for HTTP sends "as the system").
	Addr string
	// Chat is the message. The Runner may change Content, Extras, To, GroupID and
	// ChatType during the call (see MessageReply); it never changes the other fields.
	Chat *packet.Chat
}

// MessageAction is the kind of a MessageReply.
type MessageAction uint8

// Message actions.
const (
	// MessagePass: store and deliver the message as it is.
	MessagePass MessageAction = iota
	// MessageRewrite: Content and/or Extras of Chat were changed; store and deliver
	// the changed message.
	MessageRewrite
	// MessageReroute: the receivers changed (and maybe Content/Extras too): deliver to
	// To and/or GroupID of the reply instead of the original receiver, after checking
	// them as for any message (a reroute to nobody is StatusNoReceiver).
	MessageReroute
	// MessageReject: refuse the message; answer the sender (cmd 12) with Code and
	// Reason; store and deliver nothing.
	MessageReject
	// MessageDrop: store and deliver nothing, and answer the sender as if it had been
	// sent (a silent drop: the sender is not told).
	MessageDrop
)

// String returns the action's name.
func (a MessageAction) String() string {
	switch a {
	case MessagePass:
		return "pass"
	case MessageRewrite:
		return "rewrite"
	case MessageReroute:
		return "reroute"
	case MessageReject:
		return "reject"
	case MessageDrop:
		return "drop"
	}
	return "unknown"
}

// Changes is a set of Chat fields a Runner changed.
type Changes uint8

// Changed fields.
const (
	ChangedContent  Changes = 1 << iota // Chat.Content
	ChangedExtras                       // Chat.Extras
	ChangedTo                           // the private receivers (Chat.To, MessageReply.To)
	ChangedGroup                        // Chat.GroupID
	ChangedChatType                     // Chat.ChatType
)

// Routing is the set of changes that make a reply MessageReroute.
const Routing = ChangedTo | ChangedGroup | ChangedChatType

// MessageReply is the decision on a message. The zero value passes it unchanged.
type MessageReply struct {
	// Action is what to do with the message.
	Action MessageAction
	// Changed lists the Chat fields changed (MessageRewrite, MessageReroute; may also
	// be set with MessageReject/MessageDrop by earlier scripts, and is then moot).
	Changed Changes
	// To and GroupID are the complete receivers after a reroute (MessageReroute):
	// To lists users, each delivered a copy (Chat.To holds To[0] when there is exactly
	// one, and is empty otherwise); GroupID is the group (equal to Chat.GroupID). One
	// of them may be empty, or both set (deliver to the group and to the users).
	To      []string
	GroupID string
	// Code is the status answered to the sender (MessageReject): packet.StatusRejected
	// unless the rule chose another, e.g. packet.StatusRateLimited.
	Code packet.Status
	// Reason is the `msg` answered to the sender (MessageReject).
	Reason string
	// Script is the script that rejected or dropped the message; for a rewrite or
	// reroute, the last script of the chain that ran.
	Script string
	// Also are users who get a copy of the message besides its receivers, in the same
	// conversation (MessagePass, MessageRewrite): the stored message, its conversation
	// and the sender's answer stay those of the original receiver, so the sender does
	// not learn who else got it.
	Also []string
	// Sends are messages the scripts send as a service identity (hooks.senders; From is
	// set), routed after this message whatever the action, without running the message
	// hook again.
	Sends []packet.Chat
}
