package timgw

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Event is one of LoggedIn, Message, Notice, Typing, Receipt, Closed, Reconnecting and
// ErrorEvent; switch on its type.
type Event interface{ event() }

// LoggedIn: the login (cmd 6) succeeded; Reconnect is set for every login after the first.
type LoggedIn struct {
	User      packet.User
	Reconnect bool
}

// Message is a chat (cmd 11), emitted once per id whether it came live or from the
// offline inbox (Offline set).
type Message struct {
	ID         string
	From       string
	To         string // the peer of a private chat
	GroupID    string // the group of a group chat
	ChatType   int    // packet.ChatTypeGroup (1) or packet.ChatTypePrivate (2)
	MsgType    int    // 0 text, 1 image, ...
	Content    string
	Extras     json.RawMessage
	CreateTime int64 // ms since the epoch
	Seq        int64 // per-conversation sequence, when stored
	Recalled   bool
	Offline    bool       // came from the offline inbox (cmd 19 type 0)
	Cmd        packet.Cmd // 11; 16 for a recall event in History
}

// Notice is a group notice (Kind "join", cmd 9; "leave", cmd 10) or a recall of a chat
// of one of the user's conversations (Kind "recall", cmd 16: Message is the chat).
type Notice struct {
	Kind    string
	UserID  string
	GroupID string
	User    packet.User
	Group   packet.Group
	Message *Message
	Offline bool
}

// Typing is a typing signal (cmd 24) from a peer or a group member.
type Typing struct {
	From, To, GroupID, State string
}

// Receipt is a peer's (or one's other device's) delivered and read cursors (cmd 27).
type Receipt struct {
	From, To, GroupID string
	Delivered, Read   int64
}

// Closed: the connection was lost (WillReconnect) or the session ended (Close, a refused
// login, reconnection off). Err says why.
type Closed struct {
	Err           error
	WillReconnect bool
}

// Reconnecting: attempt number Attempt starts after Delay.
type Reconnecting struct {
	Attempt int
	Delay   time.Duration
}

// ErrorEvent is a problem that belongs to no call: a cmd 0 or a refusal from the
// gateway (a typing signal's, for one), a failed rejoin, offline fetch or attempt.
type ErrorEvent struct{ Err error }

func (LoggedIn) event()     {}
func (Message) event()      {}
func (Notice) event()       {}
func (Typing) event()       {}
func (Receipt) event()      {}
func (Closed) event()       {}
func (Reconnecting) event() {}
func (ErrorEvent) event()   {}

// eventQueue hands events to the callback from a goroutine of its own, in order, so
// that the reading goroutine never waits for the application.
type eventQueue struct {
	mu     sync.Mutex
	q      []Event
	wake   chan struct{}
	done   bool
	handle func(Event)
}

func (e *eventQueue) init(fn func(Event)) {
	e.handle = fn
	e.wake = make(chan struct{}, 1)
	if fn != nil {
		go e.loop()
	}
}

func (e *eventQueue) emit(ev Event) {
	if e.handle == nil {
		return
	}
	e.mu.Lock()
	if !e.done {
		e.q = append(e.q, ev)
	}
	e.mu.Unlock()
	e.signal()
}

// finish lets the queue drain and its goroutine end; later events are dropped.
func (e *eventQueue) finish() {
	e.mu.Lock()
	e.done = true
	e.mu.Unlock()
	e.signal()
}

func (e *eventQueue) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) loop() {
	for range e.wake {
		for {
			e.mu.Lock()
			if len(e.q) == 0 {
				done := e.done
				e.mu.Unlock()
				if done {
					return
				}
				break
			}
			ev := e.q[0]
			e.q = e.q[1:]
			e.mu.Unlock()
			e.handle(ev)
		}
	}
}

// handle turns one packet from the gateway into an answer or an event.
func (c *Client) handle(p packet.Packet) {
	switch p.Cmd {
	case packet.CmdHeartbeatReq:
		return
	case packet.CmdChatReq:
		if m, ok := decodePush[packet.Chat](c, p, "chat"); ok {
			c.emitChat(m, false)
		}
		return
	case packet.CmdJoinGroupNotify, packet.CmdExitGroupNotify:
		n, err := wire.DecodeNotice(p)
		if err != nil {
			c.events.emit(ErrorEvent{Err: err})
			return
		}
		kind := "join"
		if p.Cmd == packet.CmdExitGroupNotify {
			kind = "leave"
		}
		c.events.emit(Notice{Kind: kind, UserID: n.User.UserID, GroupID: n.Group.GroupID, User: n.User, Group: n.Group})
		return
	case packet.CmdTypingNotify:
		t, ok := decodePush[packet.Typing](c, p, "typing signal")
		if !ok {
			return
		}
		state := t.State
		if state == "" {
			state = "typing"
		}
		c.events.emit(Typing{From: string(t.From), To: string(t.To), GroupID: string(t.GroupID), State: state})
		return
	case packet.CmdReceiptNotify:
		r, ok := decodePush[packet.Receipt](c, p, "receipt")
		if !ok {
			return
		}
		c.events.emit(Receipt{From: string(r.From), To: string(r.To), GroupID: string(r.GroupID),
			Delivered: int64(r.Delivered), Read: int64(r.Read)})
		return
	}
	r, err := wire.DecodeResponse(p)
	if err != nil {
		c.events.emit(ErrorEvent{Err: err})
		return
	}
	switch p.Cmd {
	case packet.CmdError:
		c.events.emit(ErrorEvent{Err: &Error{Code: r.Code, Msg: r.Msg, Response: r}})
		return
	case packet.CmdCancelMsgResp:
		var m packet.Chat
		_ = jsonUnmarshal(r.Data, &m)
		// Our own recall's answer names the chat asked about (or is a refusal); anything
		// else is a notice that a chat of one of our conversations was recalled.
		named, some := c.waiting(p.Cmd, string(m.ID))
		if named || (r.Code != packet.StatusOK && some) {
			c.settle(p.Cmd, r, string(m.ID))
			return
		}
		msg := messageOf(m, false)
		c.events.emit(Notice{Kind: "recall", Message: &msg})
		return
	}
	key := ""
	if p.Cmd == packet.CmdChatResp { // an answer names its chat, a refusal may (10034 does)
		var a struct{ ID packet.Str }
		_ = jsonUnmarshal(r.Data, &a)
		key = string(a.ID)
	}
	if c.settle(p.Cmd, r, key) {
		return
	}
	// A gateway that does not know a request answers 10014 in a packet of its cmd.
	if r.Code == packet.StatusUnsupportedCmd && p.Cmd%2 == 1 && c.settle(p.Cmd+1, r, "") {
		return
	}
	if !okCodes[r.Code] {
		c.events.emit(ErrorEvent{Err: &Error{Code: r.Code, Msg: r.Msg, Response: r}})
	}
}

// decodePush decodes the body of a push; an unreadable one is an ErrorEvent.
func decodePush[T any](c *Client, p packet.Packet, what string) (T, bool) {
	var v T
	if err := jsonUnmarshal(p.Body, &v); err != nil {
		c.events.emit(ErrorEvent{Err: fmt.Errorf("timgw: unreadable %s (cmd %d): %w", what, p.Cmd, err)})
		return v, false
	}
	return v, true
}

// emitChat emits a chat once per id; false when it was seen before.
func (c *Client) emitChat(m packet.Chat, offline bool) bool {
	if !c.remember(string(m.ID)) {
		return false
	}
	c.events.emit(messageOf(m, offline))
	return true
}

// messageOf turns a wire chat into a Message.
func messageOf(m packet.Chat, offline bool) Message {
	ct := int(m.ChatType)
	if ct == packet.ChatTypeUnknown {
		ct = packet.ChatTypePrivate
		if m.GroupID != "" {
			ct = packet.ChatTypeGroup
		}
	}
	cmd := packet.Cmd(m.Cmd)
	if cmd == 0 {
		cmd = packet.CmdChatReq
	}
	return Message{
		ID: string(m.ID), From: string(m.From), To: string(m.To), GroupID: string(m.GroupID),
		ChatType: ct, MsgType: int(m.MsgType), Content: m.Content, Extras: m.Extras,
		CreateTime: int64(m.CreateTime), Seq: m.Seq, Recalled: m.Recalled, Offline: offline, Cmd: cmd,
	}
}

// jsonUnmarshal decodes b into v; an empty b or null leaves v as it is.
func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, v)
}
