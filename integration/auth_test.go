package integration

import (
	"net/url"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestJWTAuth checks jwt mode: cmd 3 and cmd 5 with a valid HS256 token log the
// connection in as the token's sub (10009 / 10007); bad tokens are refused (10010 /
// 10008) and leave the connection logged out; a password login is refused.
func TestJWTAuth(t *testing.T) {
	t.Parallel()
	g := jwtGateway(t)
	now := time.Now()
	for _, tc := range []struct {
		name string
		cmd  packet.Cmd
		body func(sub string) any
		want packet.Status
	}{
		{name: "auth good token", cmd: packet.CmdAuthReq, want: packet.StatusAuthOK,
			body: func(sub string) any { return packet.Auth{Token: makeToken(t, jwtSecret, sub, now.Add(time.Hour))} }},
		{name: "auth wrong secret", cmd: packet.CmdAuthReq, want: packet.StatusAuthFailed,
			body: func(sub string) any {
				return packet.Auth{Token: makeToken(t, "not-the-secret", sub, now.Add(time.Hour))}
			}},
		{name: "auth expired", cmd: packet.CmdAuthReq, want: packet.StatusAuthFailed,
			body: func(sub string) any { return packet.Auth{Token: makeToken(t, jwtSecret, sub, now.Add(-time.Hour))} }},
		{name: "auth garbage", cmd: packet.CmdAuthReq, want: packet.StatusAuthFailed,
			body: func(string) any { return packet.Auth{Token: "not.a.jwt"} }},
		{name: "login good token", cmd: packet.CmdLoginReq, want: packet.StatusLoginOK,
			body: func(sub string) any { return packet.Login{Token: makeToken(t, jwtSecret, sub, now.Add(time.Hour))} }},
		{name: "login wrong secret", cmd: packet.CmdLoginReq, want: packet.StatusLoginFailed,
			body: func(sub string) any {
				return packet.Login{Token: makeToken(t, "not-the-secret", sub, now.Add(time.Hour))}
			}},
		{name: "login password only", cmd: packet.CmdLoginReq, want: packet.StatusLoginFailed,
			body: func(sub string) any { return packet.Login{UserID: packet.Str(sub), Password: "x"} }},
	} {
		for _, ep := range []endpoint{epTCP, epWS} {
			t.Run(tc.name+"/"+string(ep), func(t *testing.T) {
				t.Parallel()
				sub, peer := uid("jwt-user"), uid("jwt-peer")
				pc := g.dial(t, epTCP)
				if _, err := pc.Auth(makeToken(t, jwtSecret, peer, now.Add(time.Hour)), wait); err != nil {
					t.Fatalf("peer auth: %v", err)
				}
				c := g.dial(t, ep)
				r, err := c.Request(tc.cmd, tc.body(sub), wait)
				mustCode(t, "answer", r, err, tc.want)

				r, err = c.ChatTo(peer, "who am I", wait)
				if tc.want == packet.StatusAuthOK || tc.want == packet.StatusLoginOK {
					mustAccepted(t, r, err)
					if m := mustRecvChat(t, pc, "peer"); m.From != packet.Str(sub) {
						t.Errorf("peer got from %q, want the token's sub %q", m.From, sub)
					}
					return
				}
				mustCode(t, "chat after a refused token", r, err, packet.StatusNotLoggedIn)
			})
		}
	}
}

// TestJWTWebSocketQueryToken logs in during the WebSocket upgrade with ?token= (see
// conf/timgw.yaml): the first frame is cmd 6 with code 10007.
func TestJWTWebSocketQueryToken(t *testing.T) {
	t.Parallel()
	g := jwtGateway(t)
	sub := uid("jwt-wsq")
	c := dialURL(t, epWS.url(g.Addr, "/?token="+url.QueryEscape(makeToken(t, jwtSecret, sub, time.Now().Add(time.Hour)))))
	p, err := c.Recv(wait)
	if err != nil {
		t.Fatal(err)
	}
	if p.Cmd != packet.CmdLoginResp {
		t.Fatalf("first frame cmd %d, want 6: %s", p.Cmd, p.Body)
	}
	r, err := timclient.DecodeResponse(p)
	mustCode(t, "login answer", r, err, packet.StatusLoginOK)
}
