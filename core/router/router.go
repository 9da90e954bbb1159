// Package router turns an accepted chat into deliveries: it checks the chat names a
// receiver the sender may reach, stamps it with the server's identity (sender, id, time),
// resolves its receivers, and hands it to the delivery seam (Deliverer). It answers with a
// Result value; the command layer turns it into the cmd 12 the sender gets.
//
// The delivery seam is the one path of every push to a client connection: chats, notices
// and kicks are Envelopes, typed by Kind, and pass through the same chain of Deliverers
// (storage, cluster, Local).
package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
)

// Options configure a Router.
type Options struct {
	// MaxContentBytes refuses longer chat content (packet.StatusTooLarge).
	MaxContentBytes int
	// Logger receives delivery errors.
	Logger *slog.Logger
	// Observe, when set, is told every chat's result code and how long routing took
	// (metrics). Called from many goroutines.
	Observe func(code packet.Status, d time.Duration)
	// Presence says whether a user is online anywhere (in a cluster: on any node), to
	// tell a private chat's sender 10001 (stored for an offline receiver). Default: the
	// registry.
	Presence Presence
	// OpenGroups are groups that accept chats from non-members (t-im's behaviour);
	// every other group refuses them with packet.StatusNotGroupMember.
	OpenGroups OpenGroups
}

// Presence answers whether a user has a connection. Called from many goroutines.
type Presence interface {
	Online(userID string) bool
}

var _ Presence = (*session.Registry)(nil)

// Router routes chats from logged-in users.
type Router struct {
	maxContent atomic.Int64 // changes on reload while chats are checked
	open       atomic.Pointer[OpenGroups]
	reg        *session.Registry
	deliver    Deliverer
	opts       Options
	idBase     string
	idSeq      atomic.Uint64
}

// New returns a router over the registry that hands chats to d.
func New(reg *session.Registry, d Deliverer, opts Options) *Router {
	var b [6]byte
	_, _ = rand.Read(b[:])
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Presence == nil {
		opts.Presence = reg
	}
	r := &Router{reg: reg, deliver: d, opts: opts, idBase: hex.EncodeToString(b[:])}
	r.maxContent.Store(int64(opts.MaxContentBytes))
	r.SetOpenGroups(opts.OpenGroups)
	return r
}

// SetOpenGroups changes which groups accept chats from non-members (config reload).
func (r *Router) SetOpenGroups(o OpenGroups) { r.open.Store(&o) }

// SetMaxContentBytes changes the content limit (config reload).
func (r *Router) SetMaxContentBytes(n int) { r.maxContent.Store(int64(n)) }

// NewID returns a message id unique across gateway runs.
func (r *Router) NewID() string {
	var b [maxIDLen]byte
	return string(r.appendID(b[:0]))
}

// maxIDLen is the longest id NewID makes: 12 hex digits of idBase and a uint64 in base 36
// (13 digits).
const maxIDLen = 12 + 13

// appendID appends a new message id to dst.
func (r *Router) appendID(dst []byte) []byte {
	return strconv.AppendUint(append(dst, r.idBase...), r.idSeq.Add(1), 36)
}

// Sender is who sends a chat.
type Sender struct {
	UserID string // the logged-in user: becomes Chat.From
	ConnID uint64 // the sending connection, or 0 (HTTP)
	// Service marks an operator-trusted identity (a hook's tim.send as one of
	// hooks.senders): it may post to a group it is not a member of.
	Service bool
}

// Result is the router's answer to a chat: the cmd 12 code, a message for refusals, and
// for an accepted chat its Ack.
type Result struct {
	Code packet.Status
	Msg  string
	Ack  *Ack // set when the chat was accepted (10000 or 10001)
}

// Accepted reports whether the chat was accepted (delivered, or stored for later).
func (r Result) Accepted() bool { return r.Ack != nil }

// Refused returns the Result of a refused chat.
func Refused(code packet.Status, msg string) Result { return Result{Code: code, Msg: msg} }

// Route checks, stamps and delivers chat, and returns the result for the sender. It
// stamps chat in place (sender, id, time): chat belongs to the caller, and the delivery
// stages only read it.
func (r *Router) Route(ctx context.Context, from Sender, chat *packet.Chat) Result {
	return r.RouteAlso(ctx, from, chat, nil)
}

// RouteAlso is Route, delivering the chat to the users of also as well: the chat keeps
// its conversation (it is stored once, with its own receiver), and the result, like the
// sender's answer, does not name them. A hook's tim.deliver_to uses it.
func (r *Router) RouteAlso(ctx context.Context, from Sender, chat *packet.Chat, also []string) Result {
	start := time.Now() // the chat's one clock reading: its stamp, its ack, its latency
	env, acc, res := r.prepare(from, chat, also, start.UnixMilli())
	if acc != nil {
		out, err := r.deliver.Deliver(ctx, env)
		res = r.result(acc, chat, out, err, start.UnixMilli())
	}
	r.observe(res, start)
	return res
}

// Async reports whether the delivery seam completes chats later (storage on): then
// RouteAsync answers from the store's callback.
func (r *Router) Async() bool {
	_, ok := r.deliver.(AsyncDeliverer)
	return ok
}

// RouteAsync is RouteAlso answering through done instead of returning: when the delivery
// seam can complete later (AsyncDeliverer: the storage stage), done is called from the
// store's callback, on another goroutine, once the chat is stored and queued to its
// receivers, and the caller's goroutine does not wait. Otherwise, and for a chat refused
// before delivery, done is called before RouteAsync returns. done is called exactly once
// and must not block; chat must stay untouched until then.
func (r *Router) RouteAsync(ctx context.Context, from Sender, chat *packet.Chat, also []string, done func(Result)) {
	a, async := r.deliver.(AsyncDeliverer)
	if !async {
		done(r.RouteAlso(ctx, from, chat, also))
		return
	}
	start := time.Now()
	env, acc, res := r.prepare(from, chat, also, start.UnixMilli())
	if acc == nil {
		r.observe(res, start)
		done(res)
		return
	}
	a.DeliverAsync(ctx, env, func(out Outcome, err error) {
		res := r.result(acc, chat, out, err, start.UnixMilli())
		r.observe(res, start)
		done(res)
	})
}

func (r *Router) observe(res Result, start time.Time) {
	if r.opts.Observe != nil {
		r.opts.Observe(res.Code, time.Since(start))
	}
}

// accepted is what routing an accepted chat needs besides the chat, in one allocation
// (every chat pays for it): the Ack the sender gets, the receiver of a private chat (the
// envelope's Receivers), and the bytes of the id the router gives a chat without one.
type accepted struct {
	ack Ack
	to  [1]string
	id  [maxIDLen]byte
}

// prepare checks and stamps chat and builds its envelope; acc is nil when the chat is
// refused (res says why).
func (r *Router) prepare(from Sender, chat *packet.Chat, also []string, now int64) (env Envelope, acc *accepted, res Result) {
	if code, msg := r.check(from, chat); code != 0 {
		return env, nil, Refused(code, msg)
	}
	acc = new(accepted)
	r.stamp(from, chat, now, acc)
	env = Envelope{Kind: KindChat, Chat: chat, SkipConn: from.ConnID}
	if chat.ChatType == packet.ChatTypeGroup {
		env.Receivers, _ = r.reg.MembersView(string(chat.GroupID))
	} else {
		acc.to[0] = string(chat.To)
		env.Receivers = acc.to[:]
	}
	if len(also) > 0 {
		env.Receivers = appendNew(slices.Clip(env.Receivers), also, from.UserID)
	}
	return env, acc, res
}

// result is the sender's answer to the stamped chat once the delivery seam returned; the
// Ack of an accepted chat is acc's.
func (r *Router) result(acc *accepted, chat *packet.Chat, out Outcome, err error, now int64) Result {
	if err != nil {
		code := packet.StatusSendFailed
		if errors.Is(err, ErrUnavailable) {
			code = packet.StatusStorageUnavailable
		}
		r.opts.Logger.Warn("chat not delivered", "id", chat.ID, "from", chat.From, "err", err)
		return Refused(code, fmt.Sprintf("%s: %v", code.Text(), err))
	}
	code := packet.StatusOK
	if chat.ChatType == packet.ChatTypePrivate && out.Connections == 0 && !r.opts.Presence.Online(string(chat.To)) {
		code = packet.StatusOffline
	}
	ack := &acc.ack
	*ack = Ack{ID: string(chat.ID), CreateTime: int64(chat.CreateTime), ServerTime: out.ServerTime,
		Seq: out.Seq, To: string(chat.To), GroupID: string(chat.GroupID), Delivered: out.Connections,
		Duplicate: out.Duplicate}
	if out.CreateTime != 0 {
		ack.CreateTime = out.CreateTime
	}
	if ack.ServerTime == 0 {
		ack.ServerTime = now
	}
	return Result{Code: code, Ack: ack}
}

// Push hands a notice or a kick (or a chat that needs no checks) to the delivery seam.
func (r *Router) Push(ctx context.Context, env Envelope) (Outcome, error) {
	return r.deliver.Deliver(ctx, env)
}

// Dropped is the result a chat dropped by a hook gets: answered as if it was sent, so
// that the sender learns nothing; nothing is stored or delivered.
func (r *Router) Dropped(chat *packet.Chat) Result {
	if chat.ID == "" {
		chat.ID = packet.Str(r.NewID())
	}
	now := time.Now().UnixMilli()
	return Result{Code: packet.StatusOK, Ack: &Ack{ID: string(chat.ID), CreateTime: now, ServerTime: now,
		To: string(chat.To), GroupID: string(chat.GroupID)}}
}

// Ack is the data of a cmd 12 response to an accepted chat.
type Ack struct {
	ID         string `json:"id"`
	CreateTime int64  `json:"createTime"`
	ServerTime int64  `json:"serverTime"`
	Seq        int64  `json:"seq,omitempty"`
	To         string `json:"to,omitempty"`
	GroupID    string `json:"groupId,omitempty"`
	Delivered  int    `json:"delivered"`           // connections the chat was queued to
	Duplicate  bool   `json:"duplicate,omitempty"` // a resend of a stored chat: not delivered again
}

func (r *Router) check(from Sender, chat *packet.Chat) (packet.Status, string) {
	max := int(r.maxContent.Load())
	if max > 0 && len(chat.Content) > max {
		return packet.StatusTooLarge, fmt.Sprintf("content of %d bytes exceeds the limit of %d bytes", len(chat.Content), max)
	}
	if max > 0 && len(chat.Extras) > max {
		return packet.StatusTooLarge, fmt.Sprintf("extras of %d bytes exceed the limit of %d bytes", len(chat.Extras), max)
	}
	if len(chat.Extras) > 0 && chat.Extras[0] != '{' && string(chat.Extras) != "null" {
		return packet.StatusInvalidBody, "extras must be a JSON object"
	}
	switch chat.ChatType {
	case packet.ChatTypePrivate:
		if chat.To == "" {
			return packet.StatusNoReceiver, "private chat (chatType 2) needs \"to\""
		}
	case packet.ChatTypeGroup:
		if chat.GroupID == "" {
			return packet.StatusNoReceiver, "group chat (chatType 1) needs \"groupId\""
		}
		if !from.Service && !r.reg.IsMember(string(chat.GroupID), from.UserID) && !r.open.Load().Match(string(chat.GroupID)) {
			return packet.StatusNotGroupMember, fmt.Sprintf("%s is not a member of group %s", from.UserID, chat.GroupID)
		}
	case packet.ChatTypeUnknown:
		if chat.To != "" && chat.GroupID == "" {
			chat.ChatType = packet.ChatTypePrivate // t-im clients that leave chatType out
			return r.check(from, chat)
		}
		return packet.StatusNoReceiver, "chatType 0: set chatType 1 (group, with groupId) or 2 (private, with to)"
	default:
		return packet.StatusNoReceiver, fmt.Sprintf("chatType %d is not 1 (group) or 2 (private)", int64(chat.ChatType))
	}
	return 0, ""
}

// stamp sets the server's identity of chat; a new id is kept in acc's bytes.
func (r *Router) stamp(from Sender, chat *packet.Chat, now int64, acc *accepted) {
	chat.From = packet.Str(from.UserID)
	chat.Cmd = packet.Int(packet.CmdChatReq)
	if chat.ID == "" {
		// The id's bytes are acc's, written once here and never again: the string
		// keeps acc alive for as long as the chat is around.
		id := r.appendID(acc.id[:0])
		chat.ID = packet.Str(unsafe.String(unsafe.SliceData(id), len(id)))
	}
	if chat.CreateTime <= 0 {
		chat.CreateTime = packet.Int(now)
	}
	if chat.ChatType == packet.ChatTypeGroup {
		chat.To = ""
	} else {
		chat.GroupID = ""
	}
	chat.Seq = 0
	chat.Recalled = false
}

// appendNew appends the users of add that are neither in list nor skip.
func appendNew(list, add []string, skip string) []string {
	for _, u := range add {
		if u != skip && !slices.Contains(list, u) {
			list = append(list, u)
		}
	}
	return list
}
