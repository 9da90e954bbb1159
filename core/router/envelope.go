package router

import (
	"context"
	"errors"

	"github.com/timgw/timgw/core/packet"
)

// Kind says what an Envelope carries. Every push to a client's connection is one of these
// kinds and goes through the one Deliverer chain, so that a stage wrapping the chain (the
// storage stage, the cluster bus) sees all of them.
type Kind uint8

// Envelope kinds.
const (
	// KindChat is a chat (cmd 11): the storage stage stores it before it is delivered.
	KindChat Kind = iota + 1
	// KindNotice is a server notice, already encoded (join cmd 9, leave cmd 10, recall
	// cmd 16): delivered as it is, never stored.
	KindNotice
	// KindKick closes the receivers' connections, with Reason as the logged and (where
	// the protocol can) announced reason.
	KindKick
)

// String names the kind for logs and metrics labels.
func (k Kind) String() string {
	switch k {
	case KindChat:
		return "chat"
	case KindNotice:
		return "notice"
	case KindKick:
		return "kick"
	}
	return "unknown"
}

// Envelope is one push on its way to receivers, as the delivery seam sees it. It is a
// value: a stage that needs to change what inner stages see (the storage stage adds the
// chat's Seq) passes a modified copy inward and never writes to what it was given. The
// pointed-to Chat and the Receivers slice are shared and read-only for every stage.
type Envelope struct {
	// Kind says which of the fields below are set.
	Kind Kind
	// Chat (KindChat) is the stamped chat: From is the logged-in sender; ID and
	// CreateTime are set. Read-only.
	Chat *packet.Chat
	// Seq (KindChat) is the chat's per-conversation sequence number, set by the storage
	// stage on the copy it passes inward; 0 when storage is off. Inner stages deliver
	// the chat with this Seq.
	Seq int64
	// Notice (KindNotice) is the packet to deliver. Read-only.
	Notice packet.Packet
	// Reason (KindKick) says why the connections are closed.
	Reason string
	// Receivers are the user ids the push goes to: the receiver of a private chat, or
	// every member of a group (the sender included: its other devices get a copy).
	// Read-only.
	Receivers []string
	// SkipConn is a connection of this node that gets no copy (the sending one), or 0.
	SkipConn uint64
}

// Outcome is what delivery achieved: values that flow back out through the stages.
type Outcome struct {
	// Connections is how many connections the push was queued to, on this node and, in a
	// cluster, on the other nodes that have the receivers (as the presence directory
	// counts them: those deliveries complete after Deliver returns).
	Connections int
	// Stored is set when the chat was durably stored (offline delivery will follow).
	Stored bool
	// Duplicate is set when the chat resends one already stored (same sender and id): it
	// was neither stored nor delivered again, and Seq and CreateTime are the stored
	// ones, so that the sender gets the first answer again.
	Duplicate bool
	// Seq is the chat's per-conversation sequence number (0: storage off).
	Seq int64
	// CreateTime is the chat's creation time as stored (ms since epoch); 0: as stamped.
	CreateTime int64
	// ServerTime is when the chat was stored (ms since epoch); 0 when it was not.
	ServerTime int64
}

// Deliverer is the delivery seam: everything a push goes through after it is accepted.
// Implementations wrap one another: the storage stage persists chats and then calls the
// deliverer it wraps; the cluster stage hands other nodes their share over the bus;
// Local, innermost, queues to this node's connections. Deliver is called from many
// goroutines at once and must not block on a network peer longer than the storage write
// it may make. An error means the push was not accepted (for a chat: the sender is told).
type Deliverer interface {
	Deliver(ctx context.Context, env Envelope) (Outcome, error)
}

// AsyncDeliverer is a Deliverer that can complete without holding its caller: the
// storage stage, whose chats complete from the store's callback, so that no worker
// waits for a disk. DeliverAsync does what Deliver does and calls done exactly once with
// what Deliver would have returned: later, from another goroutine, or before it returns.
// done must not block. Called from many goroutines.
type AsyncDeliverer interface {
	Deliverer
	DeliverAsync(ctx context.Context, env Envelope, done func(Outcome, error))
}

// DelivererFunc adapts a function to Deliverer.
type DelivererFunc func(ctx context.Context, env Envelope) (Outcome, error)

// Deliver implements Deliverer.
func (f DelivererFunc) Deliver(ctx context.Context, env Envelope) (Outcome, error) {
	return f(ctx, env)
}

var _ Deliverer = DelivererFunc(nil)

// ErrUnavailable is wrapped by deliverers that cannot accept chats right now (storage
// down); the sender gets packet.StatusStorageUnavailable.
var ErrUnavailable = errors.New("delivery unavailable")

// ChatPacket encodes the chat of a KindChat envelope as the cmd 11 packet receivers get,
// with the envelope's Seq. The shared chat is not touched (the general encoder gets a
// copy).
func ChatPacket(env Envelope) (packet.Packet, error) {
	if body, ok := packet.AppendChatSeq(make([]byte, 0, 160+len(env.Chat.Content)), env.Chat, env.Seq); ok {
		return packet.Packet{Cmd: packet.CmdChatReq, Body: body}, nil
	}
	c := *env.Chat
	c.Seq = env.Seq
	body, err := packet.Marshal(&c)
	if err != nil {
		return packet.Packet{}, err
	}
	return packet.Packet{Cmd: packet.CmdChatReq, Body: body}, nil
}
