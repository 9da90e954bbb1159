package integration

// End-to-end tests of the hooks' safety: a login refused after authentication by the
// verified identity, and scripts that try to exhaust memory or time.

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
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

// bombs are message hooks that build a 1 GiB string, recurse forever or backtrack,
// when the content names them: one script each (failure logs are rate-limited per
// script).
var bombs = map[string]string{
	"concat": `local t, s = {}, string.rep("x", 1048576)
    for i = 1, 1024 do t[i] = s end
    msg.content = table.concat(t)`,
	"double": `local s = string.rep("x", 1048576)
    for i = 1, 10 do s = s .. s end
    msg.content = s`,
	"tail":    `local function f(n) return f(n + 1) end return f(0)`,
	"pattern": `msg.content = tostring(string.find(string.rep("a", 300), ".-.-.-.-b"))`,
}

// TestHookLimitsKeepGatewayGoing sends messages that make a message hook build a
// 1 GiB string (table.concat, doubling with ..), recurse by tail calls forever or
// backtrack in a pattern, under fail_closed and the 50 ms timeout: each is refused
// with 10027 within runawayBound (core/lua's TestDeadlineHolds holds the calls to 2x
// the timeout), the log names the limit, the gateway's peak memory stays far from
// 1 GiB, and the next message is delivered.
func TestHookLimitsKeepGatewayGoing(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for name, body := range bombs {
		files[name+".lua"] = fmt.Sprintf("return {message = function(msg)\n  if msg.content == %q then\n    %s\n  end\nend}\n", name, body)
	}
	g := startHookGateway(t, "hook-limits", hookSetup{
		Files:   files,
		Scripts: []string{"*.lua"},
		Hooks:   "  message: {policy: fail_closed}\n", // the harness sets timeout: 50ms
	})
	sender, receiver := uid("bomber"), uid("bomb-recv")
	sc, rc := g.login(t, epTCP, sender), g.login(t, epWS, receiver)
	for _, tc := range []struct{ content, log string }{
		{"concat", "table.concat: a result of 1073741824 bytes exceeds hooks.max_string_bytes (1048576)"},
		{"double", "..: a result of 2097152 bytes exceeds hooks.max_string_bytes (1048576)"},
		{"tail", "timeout: stopped after hooks.timeout (50ms)"},
		{"pattern", "timeout: stopped after hooks.timeout (50ms)"},
	} {
		t.Run(tc.content, func(t *testing.T) {
			off := g.log.Len()
			start := time.Now()
			r := send(t, sc, receiver, tc.content)
			took := time.Since(start)
			mustCode(t, tc.content, r, nil, packet.StatusRejected)
			if took > runawayBound {
				t.Errorf("answered after %v", took)
			}
			t.Logf("%s refused in %v", tc.content, took.Round(time.Millisecond))
			waitLogLine(t, g.gateway, off, "hooks: script failed", "script="+tc.content+".lua", tc.log)
			text := fmt.Sprintf("after %s", tc.content)
			mustAccepted(t, send(t, sc, receiver, text), nil)
			mustRecvContents(t, rc, "receiver", text)
		})
	}
	if peak, ok := peakRSS(g.gateway); ok {
		t.Logf("gateway peak RSS %d MiB", peak>>20)
		if peak > 512<<20 {
			t.Errorf("gateway peak RSS %d MiB: a script's strings were not bounded", peak>>20)
		}
	}
}

// peakRSS reads the gateway process' peak resident memory (Linux /proc only).
func peakRSS(g *gateway) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0, false
	}
	kb, err := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10, err == nil
}

// TestHookVarsReloadRefused edits the configuration so that a var of the shipped
// moderation script has the wrong type (rate_limit: "20"), beside a change of its word
// list: the reload, by the watcher and by POST /admin/reload (422), is refused naming
// the script and the key, and the old word list keeps working.
func TestHookVarsReloadRefused(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "hook-vars", gwConfig{})
	g := startTestGateway(t, "hook-vars", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	sender, receiver := uid("vars-s"), uid("vars-r")
	sc, rc := g.login(t, epTCP, sender), g.login(t, epWS, receiver)

	bad := cfg.Clone(t)
	bad.Set("hooks.vars.moderation.words", []any{"badword", "newword"})
	bad.Set("hooks.vars.moderation.rate_limit", "20")
	mark := time.Now()
	bad.Write(t, byRename)
	wants := []string{"hooks.vars.moderation.rate_limit", "moderation.lua", `wants a number, got a string ("20")`}
	r := adm.waitReload(t, mark, "the watcher tries the edit", func(r reloadResult) bool { return r.Trigger == "file" })
	code, res := adm.reload(t)
	for _, got := range []string{r.Error, res.Error} {
		for _, want := range wants {
			if !strings.Contains(got, want) {
				t.Errorf("reload error %q does not name %q", got, want)
			}
		}
	}
	if code != http.StatusUnprocessableEntity {
		t.Errorf("POST /admin/reload: HTTP %d, want 422", code)
	}
	mustAccepted(t, send(t, sc, receiver, "badword newword"), nil)
	mustRecvContents(t, rc, "receiver", "******* newword")
}
