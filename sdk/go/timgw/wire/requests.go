package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/timgw/timgw/core/packet"
)

// Response is a decoded response body: `{"cmd","code","msg","data"}` plus the members
// some commands add (login's user and token, join's result and group). Data, User and
// Group are kept raw; decode them with DataInto or the typed accessors.
type Response struct {
	Cmd     packet.Int      `json:"cmd"`
	Code    packet.Status   `json:"code"`
	Msg     string          `json:"msg"`
	Command string          `json:"command"`
	Data    json.RawMessage `json:"data"`
	User    json.RawMessage `json:"user"`
	Token   string          `json:"token"`
	Result  *int            `json:"result"`
	Group   json.RawMessage `json:"group"`
}

// DecodeResponse decodes a packet body as a response.
func DecodeResponse(p packet.Packet) (*Response, error) {
	var r Response
	if err := json.Unmarshal(p.Body, &r); err != nil {
		return nil, fmt.Errorf("wire: cmd %d body is not a response: %w: %.300s", p.Cmd, err, p.Body)
	}
	return &r, nil
}

// DataInto decodes the response's data member into v.
func (r *Response) DataInto(v any) error {
	if len(r.Data) == 0 {
		return fmt.Errorf("wire: response %d has no data", r.Code)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		return fmt.Errorf("wire: response %d data: %w: %.300s", r.Code, err, r.Data)
	}
	return nil
}

// DecodeChat decodes a packet body as a chat message (cmd 11).
func DecodeChat(p packet.Packet) (*packet.Chat, error) {
	var c packet.Chat
	if err := json.Unmarshal(p.Body, &c); err != nil {
		return nil, fmt.Errorf("wire: cmd %d body is not a chat: %w: %.300s", p.Cmd, err, p.Body)
	}
	return &c, nil
}

// DecodeNotice decodes a packet body as a group notice (cmd 9 or 10).
func DecodeNotice(p packet.Packet) (*packet.GroupNotice, error) {
	var n packet.GroupNotice
	if err := json.Unmarshal(p.Body, &n); err != nil {
		return nil, fmt.Errorf("wire: cmd %d body is not a group notice: %w: %.300s", p.Cmd, err, p.Body)
	}
	return &n, nil
}

// StatusError is returned by the request helpers when the server answered with an
// unexpected status.
type StatusError struct {
	Want     packet.Status
	Response *Response
	Body     []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("wire: want code %d, got %d: %.300s", e.Want, e.Response.Code, e.Body)
}

// Request sends a packet and waits at most timeout for the packet answering it (the
// command cmd.Response(): the next code for requests, the same code for heartbeat, close
// and unknown commands), and decodes it. It does not look at the status code.
func (c *Conn) Request(cmd packet.Cmd, body any, timeout time.Duration) (*Response, error) {
	if err := c.Send(cmd, body); err != nil {
		return nil, err
	}
	p, err := c.Expect(cmd.Response(), timeout)
	if err != nil {
		return nil, err
	}
	return DecodeResponse(p)
}

// requestOK is Request that also requires status want.
func (c *Conn) requestOK(cmd packet.Cmd, body any, want packet.Status, timeout time.Duration) (*Response, error) {
	if err := c.Send(cmd, body); err != nil {
		return nil, err
	}
	return c.ExpectStatus(cmd.Response(), want, timeout)
}

// ExpectStatus waits at most timeout for the next packet of command cmd, decodes it as a
// response and requires status want (a *StatusError otherwise; the response is returned
// either way when one arrived). A WebSocket login by query is answered this way.
func (c *Conn) ExpectStatus(cmd packet.Cmd, want packet.Status, timeout time.Duration) (*Response, error) {
	p, err := c.Expect(cmd, timeout)
	if err != nil {
		return nil, err
	}
	r, err := DecodeResponse(p)
	if err != nil {
		return nil, err
	}
	if r.Code != want {
		return r, &StatusError{Want: want, Response: r, Body: p.Body}
	}
	return r, nil
}

// Login logs in with cmd 5 {userId, password} and waits for cmd 6. It fails unless the
// code is 10007 (login ok); the response is returned either way when one arrived.
func (c *Conn) Login(userID, password string, timeout time.Duration) (*Response, error) {
	return c.requestOK(packet.CmdLoginReq, packet.Login{UserID: packet.Str(userID), Password: password},
		packet.StatusLoginOK, timeout)
}

// LoginToken logs in with cmd 5 {token} and waits for cmd 6, requiring 10007.
func (c *Conn) LoginToken(token string, timeout time.Duration) (*Response, error) {
	return c.requestOK(packet.CmdLoginReq, packet.Login{Token: token}, packet.StatusLoginOK, timeout)
}

// Auth authenticates with cmd 3 {token} and waits for cmd 4, requiring 10009 (auth ok).
func (c *Conn) Auth(token string, timeout time.Duration) (*Response, error) {
	return c.requestOK(packet.CmdAuthReq, packet.Auth{Token: token}, packet.StatusAuthOK, timeout)
}

// JoinGroup joins a group with cmd 7 and waits for cmd 8, requiring 10011 (join ok).
func (c *Conn) JoinGroup(groupID string, timeout time.Duration) (*Response, error) {
	return c.requestOK(packet.CmdJoinGroupReq, packet.JoinGroup{GroupID: packet.Str(groupID)},
		packet.StatusJoinGroupOK, timeout)
}

// Chat sends a chat message (cmd 11, its cmd member set) and waits for the sender's
// cmd 12 answer, whatever its code.
func (c *Conn) Chat(msg packet.Chat, timeout time.Duration) (*Response, error) {
	msg.Cmd = packet.Int(packet.CmdChatReq)
	return c.Request(packet.CmdChatReq, msg, timeout)
}

// ChatTo sends a private text message to user to and waits for cmd 12.
func (c *Conn) ChatTo(to, content string, timeout time.Duration) (*Response, error) {
	return c.Chat(packet.Chat{To: packet.Str(to), ChatType: packet.ChatTypePrivate, Content: content}, timeout)
}

// ChatGroup sends a group text message to groupID and waits for cmd 12.
func (c *Conn) ChatGroup(groupID, content string, timeout time.Duration) (*Response, error) {
	return c.Chat(packet.Chat{GroupID: packet.Str(groupID), ChatType: packet.ChatTypeGroup, Content: content}, timeout)
}

// ExpectChat waits for a delivered chat message (cmd 11) and decodes it.
func (c *Conn) ExpectChat(timeout time.Duration) (*packet.Chat, error) {
	p, err := c.Expect(packet.CmdChatReq, timeout)
	if err != nil {
		return nil, err
	}
	return DecodeChat(p)
}

// Heartbeat sends cmd 13 and waits for the cmd 13 answer.
func (c *Conn) Heartbeat(timeout time.Duration) error {
	if err := c.Send(packet.CmdHeartbeatReq, packet.Heartbeat{Cmd: packet.Int(packet.CmdHeartbeatReq), HBByte: 1}); err != nil {
		return err
	}
	_, err := c.Expect(packet.CmdHeartbeatReq, timeout)
	return err
}

// GetUsers asks for users with cmd 17 {userId, type} (type 0 online, 1 offline, 2 all)
// and waits for cmd 18. It returns the response and its data decoded as a user list.
func (c *Conn) GetUsers(userID string, typ int, timeout time.Duration) (*Response, []packet.User, error) {
	r, err := c.Request(packet.CmdGetUserReq, packet.GetUser{UserID: packet.Str(userID), Type: packet.Int(typ)}, timeout)
	if err != nil {
		return nil, nil, err
	}
	var users []packet.User
	if len(r.Data) > 0 && string(r.Data) != "null" {
		if err := r.DataInto(&users); err != nil {
			return r, nil, err
		}
	}
	return r, users, nil
}
