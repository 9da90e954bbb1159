// Package packet defines the t-im wire vocabulary that every part of timgw shares:
// command codes, status codes, the packet envelope that codecs produce and consume,
// and the JSON bodies of the commands (chat message, login, query, response).
//
// Bodies are decoded leniently, the way t-im's own clients write them: wherever a number
// is expected a numeric string is accepted ("cmd":"11"), and wherever an id string is
// expected a number is accepted.
package packet

import "fmt"

// Cmd is a t-im command code (docs/protocol.md section 2).
type Cmd uint8

// Command codes. Requests are odd, their responses follow them.
const (
	CmdError           Cmd = 0 // timgw: a framing or protocol error that belongs to no request
	CmdHandshakeReq    Cmd = 1
	CmdHandshakeResp   Cmd = 2
	CmdAuthReq         Cmd = 3
	CmdAuthResp        Cmd = 4
	CmdLoginReq        Cmd = 5
	CmdLoginResp       Cmd = 6
	CmdJoinGroupReq    Cmd = 7
	CmdJoinGroupResp   Cmd = 8
	CmdJoinGroupNotify Cmd = 9
	CmdExitGroupNotify Cmd = 10
	CmdChatReq         Cmd = 11
	CmdChatResp        Cmd = 12
	CmdHeartbeatReq    Cmd = 13
	CmdCloseReq        Cmd = 14
	CmdCancelMsgReq    Cmd = 15
	CmdCancelMsgResp   Cmd = 16
	CmdGetUserReq      Cmd = 17
	CmdGetUserResp     Cmd = 18
	CmdGetMessageReq   Cmd = 19
	CmdGetMessageResp  Cmd = 20

	// timgw's extensions (docs/protocol.md, "Extensions"): a t-im client never sends
	// them and is never sent them unless it asks.
	CmdLeaveGroupReq  Cmd = 21 // leave a group: {"groupId"}
	CmdLeaveGroupResp Cmd = 22
	CmdTypingReq      Cmd = 23 // a live typing signal to a peer or a group, never stored
	CmdTypingNotify   Cmd = 24 // the typing signal as receivers get it
	// Receipts and conversation lists (docs/protocol.md, "Receipts and conversations").
	CmdReceiptReq        Cmd = 25 // delivered/read receipt of a conversation up to a seq
	CmdReceiptResp       Cmd = 26
	CmdReceiptNotify     Cmd = 27 // a receipt as the conversation's other side gets it
	CmdConversationsReq  Cmd = 28 // list the caller's conversations
	CmdConversationsResp Cmd = 29
)

// MaxCmd is the highest command code of the protocol, timgw's extensions included.
const MaxCmd = CmdConversationsResp

var cmdNames = [...]string{
	"COMMAND_ERROR", "COMMAND_HANDSHAKE_REQ", "COMMAND_HANDSHAKE_RESP", "COMMAND_AUTH_REQ",
	"COMMAND_AUTH_RESP", "COMMAND_LOGIN_REQ", "COMMAND_LOGIN_RESP", "COMMAND_JOIN_GROUP_REQ",
	"COMMAND_JOIN_GROUP_RESP", "COMMAND_JOIN_GROUP_NOTIFY_RESP", "COMMAND_EXIT_GROUP_NOTIFY_RESP",
	"COMMAND_CHAT_REQ", "COMMAND_CHAT_RESP", "COMMAND_HEARTBEAT_REQ", "COMMAND_CLOSE_REQ",
	"COMMAND_CANCEL_MSG_REQ", "COMMAND_CANCEL_MSG_RESP", "COMMAND_GET_USER_REQ",
	"COMMAND_GET_USER_RESP", "COMMAND_GET_MESSAGE_REQ", "COMMAND_GET_MESSAGE_RESP",
	"COMMAND_LEAVE_GROUP_REQ", "COMMAND_LEAVE_GROUP_RESP", "COMMAND_TYPING_REQ", "COMMAND_TYPING_NOTIFY",
	"COMMAND_RECEIPT_REQ", "COMMAND_RECEIPT_RESP", "COMMAND_RECEIPT_NOTIFY", "COMMAND_CONVERSATIONS_REQ",
	"COMMAND_CONVERSATIONS_RESP",
}

// Valid reports whether c is a command of the protocol table.
func (c Cmd) Valid() bool { return c >= CmdHandshakeReq && c <= MaxCmd }

// String returns t-im's enum name of the command.
func (c Cmd) String() string {
	if int(c) < len(cmdNames) {
		return cmdNames[c]
	}
	return fmt.Sprintf("COMMAND_UNKNOWN_%d", uint8(c))
}

// Response returns the command that answers c: the next code for requests that have an
// answer, c itself for heartbeat and close, and c for anything else.
func (c Cmd) Response() Cmd {
	switch c {
	case CmdHandshakeReq, CmdAuthReq, CmdLoginReq, CmdJoinGroupReq, CmdChatReq,
		CmdCancelMsgReq, CmdGetUserReq, CmdGetMessageReq, CmdLeaveGroupReq, CmdReceiptReq, CmdConversationsReq:
		return c + 1
	}
	return c
}

// Packet is one decoded frame: its command and its JSON body. It is what every codec
// produces from bytes and turns back into bytes, whatever the protocol.
//
// Body is a single JSON object. On outbound packets it always carries "cmd" as well, so
// that protocols without a binary header (WebSocket, HTTP) can send Body as it is.
type Packet struct {
	Cmd  Cmd
	Body []byte
}
