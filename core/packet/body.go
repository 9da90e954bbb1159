package packet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tidwall/gjson"
)

// Int is a JSON integer that also accepts a numeric string ("11") and an empty string or
// null (0), as t-im's WebSocket demo sends them. It is written as a plain number.
type Int int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		*n = 0
		return nil
	}
	if b[0] == '"' {
		if len(b) < 2 || b[len(b)-1] != '"' {
			return fmt.Errorf("not an integer: %q", b)
		}
		b = bytes.TrimSpace(b[1 : len(b)-1])
		if len(b) == 0 {
			*n = 0
			return nil
		}
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f != float64(int64(f)) {
			return fmt.Errorf("not an integer: %q", b)
		}
		v = int64(f)
	}
	*n = Int(v)
	return nil
}

// Str is a JSON string that also accepts a number (an id written as 42). It is written
// as a string.
type Str string

// UnmarshalJSON implements json.Unmarshaler.
func (s *Str) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*s = ""
	case b[0] == '"':
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 && bytes.IndexByte(b[1:len(b)-1], '"') < 0 {
			*s = Str(b[1 : len(b)-1]) // no escapes: the common case, without a decoder
			return nil
		}
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = Str(v)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		var num json.Number
		if err := json.Unmarshal(b, &num); err != nil {
			return err
		}
		*s = Str(num.String())
	default:
		return fmt.Errorf("not a string or number: %.20q", b)
	}
	return nil
}

// Chat types (the `chatType` field).
const (
	ChatTypeUnknown = 0
	ChatTypeGroup   = 1
	ChatTypePrivate = 2
)

// Chat is the body of cmd 11, sent by a client and delivered to receivers.
type Chat struct {
	ID         Str             `json:"id,omitempty"`         // message id; set by the server when absent
	From       Str             `json:"from,omitempty"`       // sender; always overwritten with the logged-in user
	To         Str             `json:"to,omitempty"`         // receiver user id (private chat)
	Cmd        Int             `json:"cmd"`                  // 11
	CreateTime Int             `json:"createTime,omitempty"` // ms since epoch; set by the server when absent
	MsgType    Int             `json:"msgType"`              // 0 text, 1 image, 2 voice, 3 video, 4 music, 5 news
	ChatType   Int             `json:"chatType"`             // 1 group, 2 private
	GroupID    Str             `json:"groupId,omitempty"`    // group id when chatType is 1
	Content    string          `json:"content"`              // the content
	Extras     json.RawMessage `json:"extras,omitempty"`     // free-form extension object
	Seq        int64           `json:"seq,omitempty"`        // per-conversation sequence, when stored
	Recalled   bool            `json:"recalled,omitempty"`   // the sender recalled it
}

// Handshake is the body of cmd 1 and 2.
type Handshake struct {
	Cmd   Int `json:"cmd"`
	HByte Int `json:"hbyte"`
}

// Heartbeat is the body of cmd 13, both ways.
type Heartbeat struct {
	Cmd    Int `json:"cmd"`
	HBByte Int `json:"hbbyte"`
}

// Auth is the body of cmd 3.
type Auth struct {
	Token string `json:"token"`
}

// Login is the body of cmd 5: userId and password, or token, or both.
type Login struct {
	UserID   Str    `json:"userId"`
	Password string `json:"password"`
	Token    string `json:"token"`
}

// JoinGroup is the body of cmd 7.
type JoinGroup struct {
	GroupID Str    `json:"groupId"`
	Name    string `json:"name,omitempty"`
}

// LeaveGroup is the body of cmd 21 (timgw): leave a group.
type LeaveGroup struct {
	GroupID Str `json:"groupId"`
}

// Typing is the body of cmd 23 (timgw) as a client sends it, and of cmd 24 as receivers
// get it: a live signal to a peer (to) or a group (groupId), never stored.
type Typing struct {
	Cmd Cmd `json:"cmd,omitempty"`
	// From is the sender, set by the server (a client's from is replaced).
	From Str `json:"from,omitempty"`
	// To is the peer of a private conversation.
	To Str `json:"to,omitempty"`
	// GroupID is the group, for a signal to a group's members.
	GroupID Str `json:"groupId,omitempty"`
	// State is "typing" (default) or "paused"; other states of up to 32 bytes pass
	// through as they are (a client may define "recording", ...).
	State string `json:"state,omitempty"`
}

// Receipt is the body of cmd 25 (timgw) as a client sends it, of the data of its answer
// (cmd 26), and of cmd 27 as the conversation's other side gets it: the reader's
// delivered and read cursors (seqs) of a private conversation (to) or a group (groupId).
type Receipt struct {
	Cmd Cmd `json:"cmd,omitempty"`
	// From is the reader, set by the server (cmd 27 only).
	From Str `json:"from,omitempty"`
	// To is the peer of a private conversation.
	To Str `json:"to,omitempty"`
	// GroupID is the group of a group conversation.
	GroupID Str `json:"groupId,omitempty"`
	// Delivered: every chat up to this seq reached the reader's device.
	Delivered Int `json:"delivered"`
	// Read: every chat up to this seq was read (read implies delivered).
	Read Int `json:"read"`
}

// ConversationsQuery is the body of cmd 28 (timgw): a page of the caller's
// conversations, newest first.
type ConversationsQuery struct {
	// Limit is the page size (0: the default).
	Limit Int `json:"limit"`
	// Before pages: only conversations whose last chat's serverTime is before it (ms).
	Before Int `json:"before"`
}

// Close is the body of cmd 14.
type Close struct {
	UserID Str `json:"userId"`
}

// GetUser is the body of cmd 17; Type is 0 online, 1 offline, 2 all.
type GetUser struct {
	UserID Str `json:"userId"`
	Type   Int `json:"type"`
}

// GetMessage is the body of cmd 19 (a message query).
type GetMessage struct {
	UserID     Str `json:"userId"`
	FromUserID Str `json:"fromUserId"`
	GroupID    Str `json:"groupId"`
	BeginTime  Int `json:"beginTime"`
	EndTime    Int `json:"endTime"`
	Offset     Int `json:"offset"`
	Count      Int `json:"count"`
	Type       Int `json:"type"` // 0 offline, 1 history
	// timgw additions
	AfterSeq Int `json:"afterSeq,omitempty"` // history: only messages with seq > afterSeq (device sync)
}

// CancelMsg is the body of cmd 15 (recall).
type CancelMsg struct {
	ID       Str `json:"id"`
	To       Str `json:"to,omitempty"`
	GroupID  Str `json:"groupId,omitempty"`
	ChatType Int `json:"chatType,omitempty"`
}

// User is a user as responses describe it.
type User struct {
	UserID  string   `json:"userId"`
	Nick    string   `json:"nick,omitempty"`
	Avatar  string   `json:"avatar,omitempty"`
	Status  string   `json:"status,omitempty"` // "online" or "offline"
	Friends []string `json:"friends"`
	Groups  []string `json:"groups"`
}

// Group is a group as responses and notices describe it.
type Group struct {
	GroupID string `json:"groupId"`
	Name    string `json:"name,omitempty"`
	Online  int    `json:"online,omitempty"`
}

// GroupNotice is the body of cmd 9 and 10: someone joined or left a group.
type GroupNotice struct {
	Cmd   Cmd   `json:"cmd"`
	User  User  `json:"user"`
	Group Group `json:"group"`
}

// Response is the body of every answer: `{"cmd","code","msg","data"}`, plus t-im's
// `command` name. Commands that carry more (login's user and token, join's result) add
// their fields through the optional members.
type Response struct {
	Cmd     Cmd    `json:"cmd"`
	Code    Status `json:"code"`
	Msg     string `json:"msg"`
	Command string `json:"command"`
	Data    any    `json:"data,omitempty"`
	User    *User  `json:"user,omitempty"`   // login
	Token   string `json:"token,omitempty"`  // login
	Result  *int   `json:"result,omitempty"` // join group: 1 ok, 2 not exist, 3 full, 4 blacklist, 5 kicked
	Group   *Group `json:"group,omitempty"`  // join group
}

// NewResponse returns a response with the status's default message.
func NewResponse(cmd Cmd, code Status) *Response {
	return &Response{Cmd: cmd, Code: code, Msg: code.Text(), Command: cmd.String()}
}

// Encode marshals v as the body of a packet of command cmd.
func Encode(cmd Cmd, v any) (Packet, error) {
	b, err := Marshal(v)
	if err != nil {
		return Packet{}, fmt.Errorf("encode %s: %w", cmd, err)
	}
	return Packet{Cmd: cmd, Body: b}, nil
}

// MustEncode is Encode for values that cannot fail to marshal (the types of this package).
func MustEncode(cmd Cmd, v any) Packet {
	p, err := Encode(cmd, v)
	if err != nil {
		panic(err)
	}
	return p
}

// ResponsePacket encodes a response as a packet of its own command.
func ResponsePacket(r *Response) Packet { return MustEncode(r.Cmd, r) }

// ErrorPacket is a response with code and a precise message, for command cmd.
func ErrorPacket(cmd Cmd, code Status, msg string) Packet {
	r := NewResponse(cmd, code)
	if msg != "" {
		r.Msg = msg
	}
	return ResponsePacket(r)
}

// Decode unmarshals a packet body into v, leniently (see Int and Str). Its error says
// what is wrong in the client's terms (DescribeDecodeError).
func Decode(body []byte, v any) error {
	if err := Unmarshal(body, v); err != nil {
		if errors.Is(err, ErrInvalidUTF8) { // already names the byte and its offset
			return fmt.Errorf("invalid body: %w", err)
		}
		return errors.New("invalid body: " + DescribeDecodeError(body, v, err))
	}
	return nil
}

// DecodeChatOwned is Decode of a chat body that the caller gives away: the chat's strings
// may share body's memory instead of a copy of it, so nothing may write to body
// afterwards (a packet body fresh from a codec, which nothing else holds).
func DecodeChatOwned(body []byte, c *Chat) error {
	if CheckUTF8(body) == nil && decodeChat(body, c, true) {
		return nil
	}
	return Decode(body, c)
}

// PeekCmd reads the "cmd" member of a JSON object body, as WebSocket and HTTP bodies
// carry it. It accepts a number or a numeric string. It looks only at "cmd" (gjson scans
// without allocating): the rest of the body is validated when it is decoded.
func PeekCmd(body []byte) (Cmd, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return 0, fmt.Errorf("invalid JSON body: not a JSON object")
	}
	r := gjson.GetBytes(trimmed, "cmd")
	var n int64
	switch r.Type {
	case gjson.Number:
		if r.Num != float64(int64(r.Num)) {
			return 0, fmt.Errorf("cmd %s is not an integer", r.Raw)
		}
		n = int64(r.Num)
	case gjson.String:
		v, err := strconv.ParseInt(r.Str, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cmd %q is not a number", r.Str)
		}
		n = v
	case gjson.Null:
		if !r.Exists() {
			return 0, fmt.Errorf("body has no \"cmd\"")
		}
		return 0, fmt.Errorf("cmd is null")
	default:
		return 0, fmt.Errorf("cmd %s is not a number", r.Raw)
	}
	if n < 0 || n > 255 {
		return 0, fmt.Errorf("cmd %d out of range", n)
	}
	return Cmd(n), nil
}
