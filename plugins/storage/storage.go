// Package storage is the SDK of timgw's storage plugins: the contract between the gateway
// (the host) and a plugin subprocess that persists chats, and the helpers on both sides.
//
// A storage plugin is a hashicorp/go-plugin subprocess serving the gRPC service of
// storagepb/storage.proto (protocol version 1). A Go plugin implements Backend and calls
// Serve from its main; the conformance suite in package storagetest checks a Backend
// against the semantics below. The host starts the plugin, calls Open, and talks to it
// through a Client: chats go over one long-lived stream in batches (a unary call per
// message would cost 50-400 us), everything else over unary calls.
//
// # Semantics a Backend must keep
//
//   - Append stores each chat of a batch with the next sequence number of its conversation
//     (1, 2, 3, ... per conversation) and adds one inbox entry per receiver. A chat whose
//     (from, id) is already stored is not stored again: its result repeats the stored seq,
//     server time and create time, with Duplicate set. Append returns only once everything
//     it reports stored is durable (survives kill -9 of the plugin and of the host).
//   - Every inbox entry has a cursor, increasing per user. Inbox lists a user's entries
//     oldest first; Confirm removes the entries up to a cursor. Nothing else removes them
//     but receipts (below) and, in a Retainer (retention.go), Expire and EraseUser.
//   - History lists a conversation in seq order, filtered and paged.
//   - Recall marks a chat recalled (clearing its content and extras), appends a recall
//     event (Kind 1) with the conversation's next seq, and adds inbox entries for it.
//   - Groups and members, and known users, are kept for the gateway to reload on start.
//   - Receipts: a user's delivered and read cursors per conversation only go up (read
//     implies delivered). Append raises the sender's cursors of the conversation to the
//     chat's seq (one has read what one wrote); a delivered cursor that rises removes the
//     user's inbox entries of that conversation up to it.
//   - Read fan-out (a plugin that answers OpenResponse.ReadFanout): a group chat flagged
//     Message.ReadFanout comes without receivers and is stored once (seq, dedup, head,
//     sender's cursors), with no inbox entries. JoinGroup records, for each new member,
//     the group's last seq at the join (its join seq; a member joining again keeps it).
//     Inbox first pulls, for every group the user is a member of, each ReadFanout chat
//     (kind 0, not the user's own) with a seq above max(join seq, the user's pulled mark
//     of the group) into the user's inbox as ordinary entries (new cursors, in seq
//     order), and raises the pulled mark to the group's last seq; then it answers as
//     usual (whatever its Conv, After and Limit). SetCursor raising delivered of a group
//     raises the pulled mark to it (chats delivered by receipt are never pulled); the
//     sender's raise by Append does not. A pull is idempotent: none is lost by a crash
//     mid-pull, and a user never has two entries of one chat; a single-process store
//     (bolt) pulls a chat once, a shared store may pull again one confirmed while a
//     concurrent pull for the same user was in flight (clients deduplicate by id, as they
//     must with shared stores anyway). LeaveGroup
//     and EraseUser drop the membership with its marks; expired or erased chats are not
//     pulled.
//   - Conversations: the head of each conversation (its last chat) is kept with every
//     Append, so that a user's conversations are listed newest first with both sides'
//     cursors and the unread count (chats of others, not recalled, after the read cursor).
//
// A plugin whose store is shared (a database server that the plugin processes of several
// gateways open with the same configuration) says so with OpenResponse.Shared, and then
// keeps all of the above while those processes write at once: seqs unique and gap-free
// per conversation, a (from, id) stored through one process answered as a duplicate
// through another. The host reads it with Client.Shared; a cluster of gateways needs it.
//
// Errors: ErrNotFound, ErrRecallWindow and ErrInvalid (wrapped or not) have a meaning on
// the wire; any other error means the store could not do it (the host answers "storage
// unavailable").
package storage

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/hashicorp/go-plugin"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// ProtocolVersion is the version of the plugin contract this SDK speaks.
const ProtocolVersion = 1

// PluginName is the name the storage plugin is served and dispensed under.
const PluginName = "storage"

// Handshake is the go-plugin handshake of storage plugins. The cookie only keeps the plugin
// executable from being run by hand by mistake; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "TIMGW_STORAGE_PLUGIN",
	MagicCookieValue: "f3b6a1c2-timgw-storage-v1",
}

// Kinds of Message.
const (
	KindChat   = 0 // a chat
	KindRecall = 1 // a recall event: RecallId / RecallSeq name the recalled chat
)

// Chat types, as packet.Chat's chatType.
const (
	ChatTypeGroup   = 1
	ChatTypePrivate = 2
)

// Errors with a meaning on the wire.
var (
	// ErrNotFound: the message (or object) named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrRecallWindow: the message is older than the recall window allows.
	ErrRecallWindow = errors.New("recall window expired")
	// ErrInvalid: the request is malformed (empty conversation, id, ...).
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: the plugin cannot be reached (it crashed, or is restarting).
	ErrUnavailable = errors.New("storage plugin unavailable")
	// ErrInUse: Open found the store held by another process (a bolt file locked by
	// another gateway). Retrying does not help: the host gives up at once.
	ErrInUse = errors.New("store in use by another process")
)

// Backend is what a storage plugin implements. Its methods are called from many
// goroutines at once, except Append, which the SDK's server calls from one goroutine (so
// a Backend may rely on a single writer per process) with every batch that arrived
// while the previous call ran (so one commit covers them: group commit).
type Backend interface {
	// Open configures and opens the store; config is a JSON object (may be empty).
	Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error)
	// Append stores chats; it returns one result per request, in order. An error fails
	// the whole call: nothing of it is stored.
	Append(ctx context.Context, reqs []*pb.AppendRequest) ([]*pb.AppendResult, error)
	// Inbox lists a user's pending deliveries with a cursor greater than req.After, oldest
	// first, at most req.Limit (all when 0).
	Inbox(ctx context.Context, req *pb.InboxRequest) (*pb.InboxResponse, error)
	// Confirm removes a user's inbox entries with a cursor <= req.Cursor (of one
	// conversation when req.Conv is set).
	Confirm(ctx context.Context, req *pb.ConfirmRequest) (*pb.ConfirmResponse, error)
	// History pages through a conversation in seq order.
	History(ctx context.Context, req *pb.HistoryRequest) (*pb.HistoryResponse, error)
	// Recall recalls the chat (req.From, req.Id): ErrNotFound when there is none (or it is
	// not in req.Conv), ErrRecallWindow when its server time is before req.NotBefore.
	Recall(ctx context.Context, req *pb.RecallRequest) (*pb.RecallResponse, error)
	// JoinGroup adds members to a group, creating it; a non-empty name replaces the old one.
	JoinGroup(ctx context.Context, req *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error)
	// LeaveGroup removes a member from a group.
	LeaveGroup(ctx context.Context, req *pb.LeaveGroupRequest) (*pb.LeaveGroupResponse, error)
	// ListGroups pages through groups with ids greater than req.After, ordered by id.
	ListGroups(ctx context.Context, req *pb.ListRequest) (*pb.ListGroupsResponse, error)
	// PutUser records a user; empty nick or avatar keep the stored ones.
	PutUser(ctx context.Context, req *pb.PutUserRequest) (*pb.PutUserResponse, error)
	// ListUsers pages through users with ids greater than req.After, ordered by id.
	ListUsers(ctx context.Context, req *pb.ListRequest) (*pb.ListUsersResponse, error)
	// SetCursor raises req.User's delivered and read cursors of req.Conv to req.Delivered
	// and req.Read (a cursor never goes down; read implies delivered), removes the user's
	// inbox entries of req.Conv with seq <= the delivered cursor, and answers the cursors
	// as stored.
	SetCursor(ctx context.Context, req *pb.SetCursorRequest) (*pb.SetCursorResponse, error)
	// Cursors reads req.User's cursors of req.Convs (conversations without any are left
	// out).
	Cursors(ctx context.Context, req *pb.CursorsRequest) (*pb.CursorsResponse, error)
	// Conversations lists req.User's private conversations and those of req.Groups that
	// have a chat, newest last chat first, paged by req.Before and req.Limit.
	Conversations(ctx context.Context, req *pb.ConversationsRequest) (*pb.ConversationsResponse, error)
	// Close closes the store.
	Close() error
}

// PrivateConv is the conversation key of a private chat between users a and b, the same
// whichever sends: "p:" + len(x) + ":" + x + y with x <= y.
func PrivateConv(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "p:" + strconv.Itoa(len(a)) + ":" + a + b
}

// GroupConv is the conversation key of a group: "g:" + group id.
func GroupConv(groupID string) string { return "g:" + groupID }

// ParseConv splits a conversation key: a group id, or the two users of a private
// conversation (a <= b).
func ParseConv(conv string) (groupID, a, b string, err error) {
	switch {
	case strings.HasPrefix(conv, "g:") && len(conv) > 2:
		return conv[2:], "", "", nil
	case strings.HasPrefix(conv, "p:"):
		rest := conv[2:]
		i := strings.IndexByte(rest, ':')
		if i <= 0 || i > 6 {
			break
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n <= 0 || n >= len(rest)-i-1 {
			break
		}
		a, b = rest[i+1:i+1+n], rest[i+1+n:]
		if PrivateConv(a, b) != conv { // leading zeros, "+", or a > b
			break
		}
		return "", a, b, nil
	}
	return "", "", "", errors.New("storage: malformed conversation key")
}

// Member reports whether user takes part in the private conversation conv. It is false
// for group conversations (membership is the gateway's business).
func Member(conv, user string) bool {
	g, a, b, err := ParseConv(conv)
	return err == nil && g == "" && (a == user || b == user)
}
