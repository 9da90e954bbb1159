package integration

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/integration/timclient"
)

// memberScript refuses, after authentication, users whose verified id starts with
// "bad" (10015 forbidden) and tokens without the claim role=member.
const memberScript = `
return {authenticated = function(req)
  if req.userId:lower():find("^bad") then
    return "reject", "user " .. req.userId .. " is banned", tim.FORBIDDEN
  end
  if req.by ~= "authenticator" or type(req.claims) ~= "table" then
    return "reject", "no verified claims (by " .. req.by .. ")"
  end
  if req.claims.role ~= "member" then
    return "reject", "role " .. tostring(req.claims.role) .. " may not log in"
  end
end}`

// TestHookAuthenticatedJWT runs the authenticated hook in jwt mode: it sees the
// token's verified subject and claims (the auth hook, run before verification, sees
// only the raw token), and refuses with its own code and reason over cmd 3, cmd 5 and
// the WebSocket query; a refused client is not logged in, an accepted one chats.
func TestHookAuthenticatedJWT(t *testing.T) {
	t.Parallel()
	g := startHookGateway(t, "hook-authenticated", hookSetup{
		Base:    gwConfig{Auth: "jwt", JWTSecret: hookJWTSecret},
		Files:   map[string]string{"member.lua": memberScript},
		Scripts: []string{"member.lua"},
	})
	exp := time.Now().Add(time.Hour)
	token := func(sub, role string) string {
		return hookToken(t, hookJWTSecret, sub, exp, jwt.MapClaims{"role": role})
	}
	peer := uid("member-peer")
	pc := g.dial(t, epTCP)
	r, err := pc.LoginToken(token(peer, "member"), wait)
	mustCode(t, "peer login", r, err, packet.StatusLoginOK)

	login := func(t *testing.T, how, tok string) (*timclient.Conn, *timclient.Response) {
		t.Helper()
		var (
			c   *timclient.Conn
			r   *timclient.Response
			err error
		)
		switch how {
		case "cmd 3":
			c = g.dial(t, epTCP)
			r, err = c.Auth(tok, wait)
		case "cmd 5":
			c = g.dial(t, epWS)
			r, err = c.LoginToken(tok, wait)
		default: // the WebSocket query
			c = dialURL(t, epWS.url(g.Addr, "/?token="+url.QueryEscape(tok)))
			var p packet.Packet
			if p, err = c.Expect(packet.CmdLoginResp, wait); err == nil {
				r, err = timclient.DecodeResponse(p)
			}
		}
		if r == nil {
			t.Fatalf("%s: %v", how, err)
		}
		return c, r
	}
	for _, how := range []string{"cmd 3", "cmd 5", "ws query"} {
		ok, failed := packet.StatusLoginOK, packet.StatusLoginFailed
		if how == "cmd 3" {
			ok, failed = packet.StatusAuthOK, packet.StatusAuthFailed
		}
		for _, tc := range []struct {
			name, sub, role string
			code            packet.Status
			reason          string
		}{
			{"banned subject", uid("Bad9"), "member", packet.StatusForbidden, "is banned"},
			{"wrong role", uid("guest"), "guest", failed, "role guest may not log in"},
			{"member", uid("member"), "member", ok, ""},
		} {
			t.Run(how+" "+tc.name, func(t *testing.T) {
				c, r := login(t, how, token(tc.sub, tc.role))
				mustCode(t, tc.name, r, nil, tc.code)
				if tc.reason == "" {
					mustAccepted(t, send(t, c, peer, "hi"), nil)
					if m := mustRecvChat(t, pc, "peer"); m.From != packet.Str(tc.sub) {
						t.Errorf("chat from %q, want %q", m.From, tc.sub)
					}
					return
				}
				if !strings.Contains(r.Msg, tc.reason) {
					t.Errorf("msg %q, want it to contain %q", r.Msg, tc.reason)
				}
				mustCode(t, "chat after the refusal", send(t, c, peer, "let me in"), nil, packet.StatusNotLoggedIn)
			})
		}
	}
}
