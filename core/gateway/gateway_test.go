package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// fakeConn records what the gateway sends and whether it closed the connection.
type fakeConn struct {
	id     uint64
	mu     sync.Mutex
	got    []packet.Packet
	closed string
	state  any
}

var _ Conn = (*fakeConn)(nil)

func (c *fakeConn) ID() uint64       { return c.id }
func (c *fakeConn) Protocol() string { return "test" }
func (c *fakeConn) Transport() session.Transport {
	return session.Transport{Protocol: "test", RemoteAddr: "127.0.0.1:1"}
}
func (c *fakeConn) State() *any    { return &c.state }
func (c *fakeConn) Close(r string) { c.mu.Lock(); c.closed = r; c.mu.Unlock() }
func (c *fakeConn) Send(p packet.Packet) error {
	c.mu.Lock()
	c.got = append(c.got, p)
	c.mu.Unlock()
	return nil
}

// take returns and forgets what was sent.
func (c *fakeConn) take() []packet.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.got
	c.got = nil
	return g
}

type reply struct {
	Cmd    int             `json:"cmd"`
	Code   int             `json:"code"`
	Msg    string          `json:"msg"`
	Data   json.RawMessage `json:"data"`
	Result int             `json:"result"`
	From   string          `json:"from"`
}

func parse(t *testing.T, p packet.Packet) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal(p.Body, &r); err != nil {
		t.Fatalf("body %s: %v", p.Body, err)
	}
	if r.Cmd != int(p.Cmd) {
		t.Fatalf("body cmd %d differs from packet cmd %d", r.Cmd, p.Cmd)
	}
	return r
}

type rig struct {
	g   *Gateway
	reg *session.Registry
}

func newRig(a Authenticator) *rig {
	reg := session.New()
	r := router.New(reg, &router.Local{Registry: reg}, router.Options{MaxContentBytes: 100})
	return &rig{g: New(Options{Registry: reg, Router: r, Authenticator: a}), reg: reg}
}

func (r *rig) do(c *fakeConn, cl *client, cmd packet.Cmd, body string) {
	r.g.handle(context.Background(), c, cl, packet.Packet{Cmd: cmd, Body: []byte(body)})
}

func (r *rig) login(t *testing.T, id uint64, user string) (*fakeConn, *client) {
	t.Helper()
	c, cl := &fakeConn{id: id}, &client{}
	r.do(c, cl, packet.CmdLoginReq, `{"userId":"`+user+`"}`)
	if got := parse(t, c.take()[0]); got.Code != int(packet.StatusLoginOK) {
		t.Fatalf("login %s: %+v", user, got)
	}
	return c, cl
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name     string
		loggedIn bool
		cmd      packet.Cmd
		body     string
		wantCmd  packet.Cmd
		wantCode packet.Status
		wantMsg  string
	}{
		{"handshake", false, packet.CmdHandshakeReq, `{"hbyte":3}`, packet.CmdHandshakeResp, 0, ""},
		{"heartbeat", false, packet.CmdHeartbeatReq, `{"hbbyte":1}`, packet.CmdHeartbeatReq, 0, ""},
		{"login without user id", false, packet.CmdLoginReq, `{}`, packet.CmdLoginResp, packet.StatusLoginFailed, "needs a userId"},
		{"login bad body", false, packet.CmdLoginReq, `{"userId":`, packet.CmdLoginResp, packet.StatusInvalidBody, "invalid"},
		{"auth token in open mode", false, packet.CmdAuthReq, `{"token":"t"}`, packet.CmdAuthResp, packet.StatusAuthOK, "token accepted"},
		{"chat before login", false, packet.CmdChatReq, `{"to":"b","chatType":2}`, packet.CmdChatResp, packet.StatusNotLoggedIn, "cmd 5"},
		{"join before login", false, packet.CmdJoinGroupReq, `{"groupId":"g"}`, packet.CmdJoinGroupResp, packet.StatusNotLoggedIn, ""},
		{"get user before login", false, packet.CmdGetUserReq, `{"type":0}`, packet.CmdGetUserResp, packet.StatusNotLoggedIn, ""},
		{"chat bad json", true, packet.CmdChatReq, `{"to":`, packet.CmdChatResp, packet.StatusInvalidBody, ""},
		{"chat wrong type", true, packet.CmdChatReq, `{"to":"b","chatType":"x"}`, packet.CmdChatResp, packet.StatusInvalidBody, ""},
		{"chat to offline", true, packet.CmdChatReq, `{"to":"nobody","chatType":2,"content":"x"}`, packet.CmdChatResp, packet.StatusOffline, ""},
		{"chat too large", true, packet.CmdChatReq, `{"to":"b","chatType":2,"content":"` + strings.Repeat("x", 101) + `"}`, packet.CmdChatResp, packet.StatusTooLarge, ""},
		{"join empty group id", true, packet.CmdJoinGroupReq, `{"groupId":""}`, packet.CmdJoinGroupResp, packet.StatusJoinGroupFailed, "groupId"},
		{"join", true, packet.CmdJoinGroupReq, `{"groupId":"g1"}`, packet.CmdJoinGroupResp, packet.StatusJoinGroupOK, ""},
		{"get online users", true, packet.CmdGetUserReq, `{"type":0}`, packet.CmdGetUserResp, packet.StatusGetOnlineOK, ""},
		{"get offline users", true, packet.CmdGetUserReq, `{"type":"1"}`, packet.CmdGetUserResp, packet.StatusGetOfflineOK, ""},
		{"get all users", true, packet.CmdGetUserReq, `{"type":2}`, packet.CmdGetUserResp, packet.StatusGetUserOK, ""},
		{"get users bad type", true, packet.CmdGetUserReq, `{"type":5}`, packet.CmdGetUserResp, packet.StatusGetUserFailed, "type 5"},
		{"get users of someone else", true, packet.CmdGetUserReq, `{"userId":"bob","type":0}`, packet.CmdGetUserResp, packet.StatusForbidden, ""},
		{"close someone else", true, packet.CmdCloseReq, `{"userId":"bob"}`, packet.CmdCloseReq, packet.StatusForbidden, "only its own"},
		{"server cmd from client", true, packet.CmdChatResp, `{}`, packet.CmdChatResp, packet.StatusUnsupportedCmd, "sent by the server"},
		{"unknown cmd", false, 99, `{}`, 99, packet.StatusUnsupportedCmd, "unsupported cmd 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(auth.Open{})
			c, cl := &fakeConn{id: 1}, &client{}
			if tt.loggedIn {
				c, cl = r.login(t, 1, "alice")
			}
			r.do(c, cl, tt.cmd, tt.body)
			got := c.take()
			if len(got) != 1 {
				t.Fatalf("got %d packets, want 1", len(got))
			}
			rep := parse(t, got[0])
			if got[0].Cmd != tt.wantCmd || rep.Code != int(tt.wantCode) || !strings.Contains(rep.Msg, tt.wantMsg) {
				t.Fatalf("got cmd %d code %d msg %q; want cmd %d code %d msg containing %q",
					got[0].Cmd, rep.Code, rep.Msg, tt.wantCmd, tt.wantCode, tt.wantMsg)
			}
			if c.closed != "" {
				t.Fatalf("connection closed: %s", c.closed)
			}
		})
	}
}

func TestCloseOwnConnection(t *testing.T) {
	for _, body := range []string{`{"userId":"alice"}`, `{}`} {
		r := newRig(auth.Open{})
		c, cl := r.login(t, 1, "alice")
		r.do(c, cl, packet.CmdCloseReq, body)
		if c.closed == "" || len(c.take()) != 0 {
			t.Fatalf("%s: want the connection closed with no answer", body)
		}
	}
}

func TestJoinNotifiesAndLogoutTellsGroups(t *testing.T) {
	r := newRig(auth.Open{})
	a, acl := r.login(t, 1, "alice")
	b, bcl := r.login(t, 2, "bob")
	r.do(a, acl, packet.CmdJoinGroupReq, `{"groupId":"g1","name":"G"}`)
	a.take()
	r.do(b, bcl, packet.CmdJoinGroupReq, `{"groupId":"g1"}`)
	if rep := parse(t, b.take()[0]); rep.Result != 1 || rep.Code != int(packet.StatusJoinGroupOK) {
		t.Fatalf("join answer %+v", rep)
	}
	got := a.take()
	if len(got) != 1 || got[0].Cmd != packet.CmdJoinGroupNotify || !strings.Contains(string(got[0].Body), `"userId":"bob"`) {
		t.Fatalf("alice got %v, want a cmd 9 about bob", got)
	}
	// Joining again notifies nobody.
	r.do(b, bcl, packet.CmdJoinGroupReq, `{"groupId":"g1"}`)
	b.take()
	if got := a.take(); len(got) != 0 {
		t.Fatalf("second join notified: %v", got)
	}
	// Group chat from bob reaches alice with bob as sender.
	r.do(b, bcl, packet.CmdChatReq, `{"chatType":1,"groupId":"g1","content":"hi","from":"eve"}`)
	if rep := parse(t, b.take()[0]); rep.Code != int(packet.StatusOK) {
		t.Fatalf("group chat ack %+v", rep)
	}
	if rep := parse(t, a.take()[0]); rep.Cmd != 11 || rep.From != "bob" {
		t.Fatalf("alice got %+v", rep)
	}
	// bob's last connection goes: alice hears cmd 10.
	r.g.logout(b, bcl)
	got = a.take()
	if len(got) != 1 || got[0].Cmd != packet.CmdExitGroupNotify {
		t.Fatalf("alice got %v, want cmd 10", got)
	}
	if r.reg.Online("bob") {
		t.Fatal("bob still online")
	}
}

func TestJWTLoginAndRelogin(t *testing.T) {
	secret := []byte("k")
	r := newRig(&auth.JWT{Secret: secret})
	tok, _ := auth.Sign(secret, "carol", time.Minute)
	c, cl := &fakeConn{id: 1}, &client{}
	r.do(c, cl, packet.CmdAuthReq, `{"token":"`+tok+`"}`)
	if rep := parse(t, c.take()[0]); rep.Code != int(packet.StatusAuthOK) || cl.userID != "carol" {
		t.Fatalf("auth: %+v user %q", rep, cl.userID)
	}
	r.do(c, cl, packet.CmdLoginReq, `{"userId":"carol","password":"x"}`)
	if rep := parse(t, c.take()[0]); rep.Code != int(packet.StatusLoginFailed) || !strings.Contains(rep.Msg, "token") {
		t.Fatalf("password login in jwt mode: %+v", rep)
	}
	if cl.userID != "carol" {
		t.Fatal("a failed login logged the connection out")
	}
	r.do(c, cl, packet.CmdAuthReq, `{"token":"bad"}`)
	if rep := parse(t, c.take()[0]); rep.Code != int(packet.StatusAuthFailed) {
		t.Fatalf("bad token: %+v", rep)
	}
}
