// Package router turns an accepted chat into deliveries: it checks the chat names a
// receiver the sender may reach, stamps it with the server's identity (sender, id, time),
// resolves its receivers, and hands it to the delivery seam. It answers with the cmd 12
// response the sender gets.
package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
)

// Envelope is a chat on its way to receivers, as the delivery seam sees it.
type Envelope struct {
	// Chat is the stamped message: From is the logged-in sender, ID and CreateTime set.
	// Deliverers may set Chat.Seq (storage) before calling the next deliverer; they must
	// not change anything else.
	Chat *packet.Chat
	// Receivers are the user ids the chat goes to: the receiver of a private chat, or
	// every member of the group (the sender included: its other devices get a copy).
	Receivers []string
	// SkipConn is the sending connection (0 for none), which gets no copy.
	SkipConn uint64
}

// Outcome is what delivery achieved.
type Outcome struct {
	// Connections is how many connections the chat was queued to.
	Connections int
	// Stored is set when the chat was durably stored (offline delivery will follow).
	Stored bool
	// Duplicate is set when the chat resends one already stored (same sender and id): it
	// was neither stored nor delivered again, and Chat.Seq and Chat.CreateTime are the
	// stored ones, so that the sender gets the first answer again.
	Duplicate bool
	// ServerTime is when the chat was stored (ms since epoch); 0 when it was not.
	ServerTime int64
}

// Deliverer is the delivery seam: everything a chat goes through after it is accepted.
// Implementations wrap one another: a store persists the envelope and then calls the
// deliverer it wraps; a cluster bus forwards to other nodes; Local, innermost, queues the
// chat to this gateway's connections. Deliver is called from many goroutines at once; an
// error means the chat was not accepted and the sender is told so.
type Deliverer interface {
	Deliver(ctx context.Context, env *Envelope) (Outcome, error)
}

// ErrUnavailable is wrapped by deliverers that cannot accept chats right now (storage
// down); the sender gets packet.StatusStorageUnavailable.
var ErrUnavailable = errors.New("delivery unavailable")

// Local delivers to the connections of this gateway.
type Local struct {
	Registry *session.Registry
}

var _ Deliverer = (*Local)(nil)

// Deliver implements Deliverer.
func (l *Local) Deliver(_ context.Context, env *Envelope) (Outcome, error) {
	body, err := packet.Marshal(env.Chat)
	if err != nil {
		return Outcome{}, fmt.Errorf("encode chat: %w", err)
	}
	p := packet.Packet{Cmd: packet.CmdChatReq, Body: body}
	var out Outcome
	var buf [8]session.Conn
	for _, u := range env.Receivers {
		conns := l.Registry.Conns(u, buf[:0])
		for _, c := range conns {
			if c.ID() == env.SkipConn {
				continue
			}
			if c.Send(p) == nil {
				out.Connections++
			}
		}
	}
	return out, nil
}

// Options configure a Router.
type Options struct {
	// MaxContentBytes refuses longer chat content (packet.StatusTooLarge).
	MaxContentBytes int
	// Logger receives delivery errors.
	Logger *slog.Logger
	// Observe, when set, is told every chat's result code and how long routing took
	// (metrics). Called from many goroutines.
	Observe func(code packet.Status, d time.Duration)
}

// Router routes chats from logged-in users.
type Router struct {
	maxContent atomic.Int64 // changes on reload while chats are checked
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
	r := &Router{reg: reg, deliver: d, opts: opts, idBase: hex.EncodeToString(b[:])}
	r.maxContent.Store(int64(opts.MaxContentBytes))
	return r
}

// SetMaxContentBytes changes the content limit (config reload).
func (r *Router) SetMaxContentBytes(n int) { r.maxContent.Store(int64(n)) }

// NewID returns a message id unique across gateway runs.
func (r *Router) NewID() string {
	return r.idBase + strconv.FormatUint(r.idSeq.Add(1), 36)
}

// Sender is who sends a chat.
type Sender struct {
	UserID string // the logged-in user: becomes Chat.From
	ConnID uint64 // the sending connection, or 0 (HTTP)
}

// Route checks, stamps and delivers chat, and returns the response for the sender.
// It modifies chat in place.
func (r *Router) Route(ctx context.Context, from Sender, chat *packet.Chat) *packet.Response {
	if r.opts.Observe == nil {
		return r.route(ctx, from, chat)
	}
	start := time.Now()
	resp := r.route(ctx, from, chat)
	r.opts.Observe(resp.Code, time.Since(start))
	return resp
}

func (r *Router) route(ctx context.Context, from Sender, chat *packet.Chat) *packet.Response {
	if code, msg := r.check(from, chat); code != 0 {
		resp := packet.NewResponse(packet.CmdChatResp, code)
		resp.Msg = msg
		return resp
	}
	r.stamp(from, chat)
	env := &Envelope{Chat: chat, SkipConn: from.ConnID}
	if chat.ChatType == packet.ChatTypeGroup {
		env.Receivers, _ = r.reg.Members(string(chat.GroupID), nil)
	} else {
		env.Receivers = []string{string(chat.To)}
	}
	out, err := r.deliver.Deliver(ctx, env)
	if err != nil {
		code := packet.StatusSendFailed
		if errors.Is(err, ErrUnavailable) {
			code = packet.StatusStorageUnavailable
		}
		r.opts.Logger.Warn("chat not delivered", "id", chat.ID, "from", chat.From, "err", err)
		resp := packet.NewResponse(packet.CmdChatResp, code)
		resp.Msg = fmt.Sprintf("%s: %v", code.Text(), err)
		return resp
	}
	code := packet.StatusOK
	if chat.ChatType == packet.ChatTypePrivate && out.Connections == 0 && !r.reg.Online(string(chat.To)) {
		code = packet.StatusOffline
	}
	resp := packet.NewResponse(packet.CmdChatResp, code)
	serverTime := out.ServerTime
	if serverTime == 0 {
		serverTime = time.Now().UnixMilli()
	}
	resp.Data = Ack{ID: string(chat.ID), CreateTime: int64(chat.CreateTime), ServerTime: serverTime,
		Seq: chat.Seq, To: string(chat.To), GroupID: string(chat.GroupID), Delivered: out.Connections,
		Duplicate: out.Duplicate}
	return resp
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
		if !r.reg.IsMember(string(chat.GroupID), from.UserID) {
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

func (r *Router) stamp(from Sender, chat *packet.Chat) {
	chat.From = packet.Str(from.UserID)
	chat.Cmd = packet.Int(packet.CmdChatReq)
	if chat.ID == "" {
		chat.ID = packet.Str(r.NewID())
	}
	if chat.CreateTime <= 0 {
		chat.CreateTime = packet.Int(time.Now().UnixMilli())
	}
	if chat.ChatType == packet.ChatTypeGroup {
		chat.To = ""
	} else {
		chat.GroupID = ""
	}
	chat.Seq = 0
	chat.Recalled = false
}
