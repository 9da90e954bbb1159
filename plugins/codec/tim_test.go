package codec

import (
	"strings"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	// Each request body as a plugin builds it, and the JSON the gateway receives.
	tests := []struct {
		name, want string
		cmd        Cmd
		body       any
	}{
		{"login", `{"userId":"alice","password":"pw"}`, CmdLoginReq, Login{UserID: "alice", Password: "pw"}},
		{"token login", `{"userId":"alice","token":"t"}`, CmdLoginReq, Login{UserID: "alice", Token: "t"}},
		{"private chat", `{"cmd":11,"to":"bob","chatType":2,"msgType":0,"content":"hi"}`,
			CmdChatReq, Chat{Cmd: 11, ChatType: ChatPrivate, To: "bob", Content: "hi"}},
		{"join", `{"groupId":"g1"}`, CmdJoinGroupReq, JoinGroup{GroupID: "g1"}},
		{"login answer", `{"cmd":6,"code":10007,"msg":"","user":{"userId":"alice","groups":["g1"]}}`, CmdLoginResp,
			LoginAnswer{Response: Response{Cmd: CmdLoginResp, Code: StatusLoginOK}, User: &User{UserID: "alice", Groups: []string{"g1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Encode(tt.cmd, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if p.Cmd != tt.cmd || string(p.Body) != tt.want {
				t.Fatalf("Encode = cmd %d %s, want cmd %d %s", p.Cmd, p.Body, tt.cmd, tt.want)
			}
		})
	}
	if _, err := Encode(CmdChatReq, func() {}); err == nil || !strings.Contains(err.Error(), "encode cmd 11 body") {
		t.Fatalf("Encode of a func: %v, want an error naming the cmd", err)
	}
}

func TestDecodeGatewayBodies(t *testing.T) {
	var chat Chat
	if err := Decode(Packet{Cmd: CmdChatReq, Body: []byte(`{"cmd":11,"id":"m1","from":"alice","to":"bob","chatType":2,"msgType":0,"content":"hi","createTime":1700000000000,"seq":3}`)}, &chat); err != nil {
		t.Fatal(err)
	}
	if chat.ID != "m1" || chat.From != "alice" || chat.ChatType != ChatPrivate || chat.Content != "hi" || chat.Seq != 3 || chat.CreateTime != 1700000000000 {
		t.Fatalf("chat %+v", chat)
	}
	var n GroupNotice
	if err := Decode(Packet{Cmd: CmdJoinGroupNotify, Body: []byte(`{"cmd":9,"user":{"userId":"bob"},"group":{"groupId":"g1"}}`)}, &n); err != nil {
		t.Fatal(err)
	}
	if n.User.UserID != "bob" || n.Group.GroupID != "g1" {
		t.Fatalf("notice %+v", n)
	}
	// A successful login answer as the gateway's core encodes it (with fields the SDK
	// does not name: command, friends, token).
	var la LoginAnswer
	if err := Decode(Packet{Cmd: CmdLoginResp, Body: []byte(`{"cmd":6,"code":10007,"msg":"login ok","command":"COMMAND_LOGIN_RESP","user":{"userId":"alice","friends":[],"groups":["g1"]},"token":"tok"}`)}, &la); err != nil {
		t.Fatal(err)
	}
	if la.Cmd != CmdLoginResp || la.Code != StatusLoginOK || la.Msg != "login ok" || la.User == nil || la.User.UserID != "alice" || len(la.User.Groups) != 1 || la.User.Groups[0] != "g1" {
		t.Fatalf("login answer %+v user %+v", la, la.User)
	}
	la = LoginAnswer{}
	if err := Decode(Packet{Cmd: CmdLoginResp, Body: []byte(`{"cmd":6,"code":10008,"msg":"login failed"}`)}, &la); err != nil {
		t.Fatal(err)
	}
	if la.Code != StatusLoginFailed || la.User != nil {
		t.Fatalf("failed login answer %+v user %+v", la, la.User)
	}
	var r Response
	if err := Decode(Packet{Cmd: CmdLoginResp, Body: []byte(`{"cmd":6,"code":10008,"msg":"login failed"}`)}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Cmd != CmdLoginResp || r.Code != StatusLoginFailed || r.Code.Success() {
		t.Fatalf("response %+v", r)
	}
	if err := Decode(Packet{Cmd: CmdChatResp, Body: []byte(`{"code":`)}, &r); err == nil || !strings.Contains(err.Error(), "decode cmd 12 body") {
		t.Fatalf("Decode of a cut body: %v, want an error naming the cmd", err)
	}
}

func TestStatusSuccess(t *testing.T) {
	tests := []struct {
		s    Status
		want bool
	}{
		{StatusOK, true}, {StatusOffline, true}, {StatusLoginOK, true}, {StatusJoinGroupOK, true},
		{StatusLoginFailed, false}, {StatusRejected, false}, {StatusServerBusy, false}, {Status(0), false},
	}
	for _, tt := range tests {
		if got := tt.s.Success(); got != tt.want {
			t.Errorf("Status(%d).Success() = %v, want %v", tt.s, got, tt.want)
		}
	}
}
