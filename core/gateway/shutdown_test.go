package gateway

import (
	"encoding/json"
	"testing"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/packet"
)

// Once the shutdown began, chats, logins and auths are refused with 10034 in the answer
// of their own cmd (a chat's answer names its id), while other commands are served.
func TestShutdownAnswers(t *testing.T) {
	r := newRig(auth.Open{})
	c, cl := r.login(t, 1, "alice")
	r.login(t, 2, "bob")
	r.do(c, cl, packet.CmdChatReq, `{"id":"before","to":"bob","chatType":2,"content":"hi"}`)
	if got := parse(t, c.take()[0]); got.Code != int(packet.StatusOK) {
		t.Fatalf("chat before the shutdown: %+v, want 10000", got)
	}
	r.g.BeginShutdown()
	tests := []struct {
		name     string
		cmd      packet.Cmd
		body     string
		wantCmd  packet.Cmd
		wantCode packet.Status
		wantID   string
	}{
		{"chat", packet.CmdChatReq, `{"id":"m1","to":"bob","chatType":2,"content":"hi"}`, packet.CmdChatResp, packet.StatusServerBusy, "m1"},
		{"chat without id", packet.CmdChatReq, `{"to":"bob","content":"hi"}`, packet.CmdChatResp, packet.StatusServerBusy, ""},
		{"unreadable chat", packet.CmdChatReq, `not json`, packet.CmdChatResp, packet.StatusServerBusy, ""},
		{"login", packet.CmdLoginReq, `{"userId":"carol"}`, packet.CmdLoginResp, packet.StatusServerBusy, ""},
		{"auth", packet.CmdAuthReq, `{"token":"t"}`, packet.CmdAuthResp, packet.StatusServerBusy, ""},
		{"heartbeat is served", packet.CmdHeartbeatReq, `{"hbbyte":1}`, packet.CmdHeartbeatReq, 0, ""},
		{"get users is served", packet.CmdGetUserReq, `{"type":0}`, packet.CmdGetUserResp, packet.StatusGetOnlineOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.do(c, cl, tt.cmd, tt.body)
			got := c.take()
			if len(got) != 1 || got[0].Cmd != tt.wantCmd {
				t.Fatalf("answers %v, want one cmd %d", got, tt.wantCmd)
			}
			rep := parse(t, got[0])
			if rep.Code != int(tt.wantCode) {
				t.Fatalf("code %d (%s), want %d", rep.Code, rep.Msg, tt.wantCode)
			}
			if tt.wantCode != packet.StatusServerBusy {
				return
			}
			var d struct {
				ID string `json:"id"`
			}
			if len(rep.Data) > 0 {
				if err := json.Unmarshal(rep.Data, &d); err != nil {
					t.Fatalf("data %s: %v", rep.Data, err)
				}
			}
			if d.ID != tt.wantID || rep.Msg == "" {
				t.Fatalf("data %s msg %q, want id %q and a reason", rep.Data, rep.Msg, tt.wantID)
			}
		})
	}
	if _, online := r.reg.User("carol"); online {
		t.Error("carol logged in during the shutdown")
	}
}

// The notice is cmd 0 with code 10034 and a reason.
func TestShutdownNotice(t *testing.T) {
	p := ShutdownNotice()
	rep := parse(t, p)
	if p.Cmd != packet.CmdError || rep.Code != int(packet.StatusServerBusy) || rep.Msg == "" {
		t.Fatalf("notice %s, want cmd 0, code 10034 and a reason", p.Body)
	}
}
