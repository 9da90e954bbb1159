package codec

import (
	"encoding/json"
	"fmt"
)

// The t-im vocabulary a plugin speaks with the gateway (docs/protocol.md): the packet
// envelope, the commands and status codes a protocol plugin usually maps, and the JSON
// bodies of login, chat and group commands. The SDK keeps its own copy so that a plugin
// needs nothing but this module; the host converts (the values are the protocol's, and
// timgw's tests check they agree with its core).

// Cmd is a t-im command code.
type Cmd uint8

// The commands a protocol plugin usually emits (requests) or receives (responses and
// notices). Every code of docs/protocol.md section 2 is valid; these are named.
const (
	CmdError           Cmd = 0  // a framing or protocol error that belongs to no request
	CmdLoginReq        Cmd = 5  // body Login
	CmdLoginResp       Cmd = 6  // body Response
	CmdJoinGroupReq    Cmd = 7  // body JoinGroup
	CmdJoinGroupResp   Cmd = 8  // body Response
	CmdJoinGroupNotify Cmd = 9  // body GroupNotice: someone joined a group of the client's
	CmdExitGroupNotify Cmd = 10 // body GroupNotice: someone left
	CmdChatReq         Cmd = 11 // body Chat, both ways: a chat sent, or delivered
	CmdChatResp        Cmd = 12 // body Response (and the chat's id and seq)
	CmdHeartbeatReq    Cmd = 13 // keepalive, both ways
	CmdCloseReq        Cmd = 14 // the client signs off
	CmdLeaveGroupReq   Cmd = 21 // body JoinGroup (its groupId)
	CmdLeaveGroupResp  Cmd = 22 // body Response
)

// Packet is one t-im packet: its command and its JSON body (a single object; the
// gateway's packets carry "cmd" in the body as well).
type Packet struct {
	Cmd  Cmd
	Body []byte
}

// Status is the `code` of a response body (docs/protocol.md section 3).
type Status int

// The status codes a protocol plugin usually maps.
const (
	StatusOK              Status = 10000 // sent (a chat), done
	StatusOffline         Status = 10001 // chat stored: the receiver is offline
	StatusLoginOK         Status = 10007
	StatusLoginFailed     Status = 10008
	StatusAuthFailed      Status = 10010 // bad credentials
	StatusJoinGroupOK     Status = 10011
	StatusJoinGroupFailed Status = 10012
	StatusInvalidBody     Status = 10020
	StatusNotLoggedIn     Status = 10023
	StatusNotGroupMember  Status = 10025
	StatusTooLarge        Status = 10026
	StatusRejected        Status = 10027 // refused by a rule
	StatusRateLimited     Status = 10028
	StatusForbidden       Status = 10029
	StatusStorageDown     Status = 10030 // storage unavailable: the chat was not accepted
	StatusServerBusy      Status = 10034 // shutting down or overloaded
)

// Success reports whether s says a request succeeded (a chat sent or stored for later,
// a login or a join done, or plain ok).
func (s Status) Success() bool {
	switch s {
	case StatusOK, StatusOffline, StatusLoginOK, StatusJoinGroupOK:
		return true
	}
	return false
}

// Chat types (Chat.ChatType).
const (
	ChatGroup   = 1
	ChatPrivate = 2
)

// Login is the body of CmdLoginReq: a user id with a password, or a token.
type Login struct {
	UserID   string `json:"userId"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
}

// Chat is the body of CmdChatReq. A plugin sets To (private) or GroupID (group),
// ChatType and Content; the gateway sets From, ID, CreateTime and Seq itself.
type Chat struct {
	Cmd        int             `json:"cmd"` // 11
	ID         string          `json:"id,omitempty"`
	From       string          `json:"from,omitempty"`
	To         string          `json:"to,omitempty"`
	GroupID    string          `json:"groupId,omitempty"`
	ChatType   int             `json:"chatType"`
	MsgType    int             `json:"msgType"` // 0 text
	Content    string          `json:"content"`
	CreateTime int64           `json:"createTime,omitempty"` // ms since epoch
	Seq        int64           `json:"seq,omitempty"`
	Extras     json.RawMessage `json:"extras,omitempty"`
}

// JoinGroup is the body of CmdJoinGroupReq and CmdLeaveGroupReq.
type JoinGroup struct {
	GroupID string `json:"groupId"`
}

// GroupNotice is the body of CmdJoinGroupNotify and CmdExitGroupNotify.
type GroupNotice struct {
	User struct {
		UserID string `json:"userId"`
	} `json:"user"`
	Group struct {
		GroupID string `json:"groupId"`
	} `json:"group"`
}

// Response is the common part of every response body.
type Response struct {
	Cmd  Cmd    `json:"cmd"`
	Code Status `json:"code"`
	Msg  string `json:"msg"`
}

// User is the user a login answer names: the id the connection is logged in as (a
// token login learns it only here) and the groups it is a member of.
type User struct {
	UserID string   `json:"userId"`
	Groups []string `json:"groups,omitempty"`
}

// LoginAnswer is the body of CmdLoginResp: the common response and, when Code is
// StatusLoginOK, the user logged in.
type LoginAnswer struct {
	Response
	User *User `json:"user,omitempty"`
}

// Encode returns a packet of command cmd with body v marshalled as JSON.
func Encode(cmd Cmd, v any) (Packet, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Packet{}, fmt.Errorf("encode cmd %d body: %w", cmd, err)
	}
	return Packet{Cmd: cmd, Body: b}, nil
}

// Decode unmarshals p's body into v (a pointer to one of the body types).
func Decode(p Packet, v any) error {
	if err := json.Unmarshal(p.Body, v); err != nil {
		return fmt.Errorf("decode cmd %d body: %w", p.Cmd, err)
	}
	return nil
}
