package integration

import (
	"net/url"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// loginUser is the user object of a login answer.
type loginUser struct {
	UserID string `json:"userId"`
}

// checkLoginResponse checks a cmd 6 answer for user: code 10007, data.userId and
// user.userId naming the user, and a token.
func checkLoginResponse(t *testing.T, r *timclient.Response, err error, user string) {
	t.Helper()
	mustCode(t, "login answer", r, err, packet.StatusLoginOK)
	if r.Cmd != packet.Int(packet.CmdLoginResp) {
		t.Errorf("login answer cmd member %d, want 6", r.Cmd)
	}
	var d loginUser
	if err := r.DataInto(&d); err != nil || d.UserID != user {
		t.Errorf("login answer data %s: want userId %q (%v)", r.Data, user, err)
	}
	var u loginUser
	if err := jsonUnmarshal(r.User, &u); err != nil || u.UserID != user {
		t.Errorf("login answer user %s: want userId %q (%v)", r.User, user, err)
	}
	if r.Token == "" {
		t.Errorf("login answer has no token")
	}
}

// TestLogin logs in with cmd 5 over every socket form of the shared port and checks
// the cmd 6 answer.
func TestLogin(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, ep := range []endpoint{epTCP, epWS, epTLS, epWSS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			user := uid("login-" + string(ep))
			c := g.dial(t, ep)
			r, err := c.Login(user, "x", wait)
			checkLoginResponse(t, r, err, user)
		})
	}
}

// TestLoginWebSocketStringCmd logs in over WebSocket the way t-im's demo page writes
// packets: "cmd" as a numeric string.
func TestLoginWebSocketStringCmd(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	user := uid("login-wsstr")
	c := g.dial(t, epWS)
	r, err := c.Request(packet.CmdLoginReq, map[string]any{"cmd": "5", "userId": user, "password": "x"}, wait)
	checkLoginResponse(t, r, err, user)
}

// TestLoginWebSocketQuery logs in during the WebSocket upgrade with
// ?username=&password= (any path): the first frame is the cmd 6 answer, and the
// connection can then chat.
func TestLoginWebSocketQuery(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, tc := range []struct {
		name string
		ep   endpoint
		path string
	}{
		{name: "ws root", ep: epWS, path: "/"},
		{name: "ws any path", ep: epWS, path: "/im/socket"},
		{name: "wss", ep: epWSS, path: "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			user, peer := uid("wsq"), uid("wsq-peer")
			pc := g.login(t, epTCP, peer)
			c := dialURL(t, tc.ep.url(g.Addr, tc.path+"?username="+url.QueryEscape(user)+"&password=x"))
			p, err := c.Recv(wait)
			if err != nil {
				t.Fatalf("first frame: %v", err)
			}
			if p.Cmd != packet.CmdLoginResp {
				t.Fatalf("first frame is cmd %d, want 6: %s", p.Cmd, p.Body)
			}
			r, err := timclient.DecodeResponse(p)
			checkLoginResponse(t, r, err, user)

			ack, err := c.ChatTo(peer, "after query login", wait)
			mustAccepted(t, ack, err)
			if m := mustRecvChat(t, pc, "peer"); m.From != packet.Str(user) {
				t.Errorf("peer got from %q, want %q", m.From, user)
			}
		})
	}
}
