package integration

// End-to-end tests of the Lua hooks (scripts/README.md): the shipped moderation rule
// under the shipped configuration; a rule edited on disk taking effect under live
// connections; a broken script rejected while the previous version keeps running; a
// runaway script stopped by the per-call timeout under both failure policies; the auth,
// connect and join hooks; the routing rule.
//
// Each gateway of these tests has a directory of its own holding scripts/ (hooks.dir,
// watched) and its configuration: the harness' test configuration plus an admin key and
// a hooks: section. Scripts are rewritten the way editors save files (a temporary file
// renamed over the old one), and every wait for a reload polls with a deadline.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// hookAdminKey is the admin key of the hook gateways (the shipped configuration's
// default, which TestHookShippedModeration relies on too).
const hookAdminKey = "dev-admin-key"

// reloadDeadline bounds every poll for a reload to show; reloadBound is the latency a
// reload must stay under (the target is 1 s; the margin is for the race detector
// on busy cores).
const (
	reloadDeadline = 5 * time.Second
	reloadBound    = 2 * time.Second
	pollEvery      = 100 * time.Millisecond
)

// ---- gateways with hooks ----

// hookSetup describes a gateway with Lua hooks of its own.
type hookSetup struct {
	// Base holds the harness options (Auth, TLS, limits); dedicated listeners are not
	// supported here.
	Base gwConfig
	// Copy names files of the repository's scripts/ copied into the scripts directory.
	Copy []string
	// Files are more files written there before the start, by name.
	Files map[string]string
	// Scripts is hooks.scripts.
	Scripts []string
	// Hooks holds more keys of the hooks: section (policies, vars, pool_size), each line
	// indented by two spaces.
	Hooks string
}

// hookGateway is a running gateway with a watched scripts directory.
type hookGateway struct {
	*gateway
	// Dir is the scripts directory (hooks.dir, absolute).
	Dir string
}

// startHookGateway writes s's scripts directory and configuration into a new directory
// and starts a gateway on them for t.
func startHookGateway(t *testing.T, name string, s hookSetup) *hookGateway {
	t.Helper()
	home, err := os.MkdirTemp(workDir, "hooks-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "scripts")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Copy {
		b, err := os.ReadFile(filepath.Join(moduleRoot, "scripts", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for f, content := range s.Files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The file's listen address only names the storage directory: -listen overrides it.
	listen, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(s.Scripts))
	for i, sc := range s.Scripts {
		quoted[i] = strconv.Quote(sc)
	}
	cfg := s.Base.render(listen, nil) +
		fmt.Sprintf("admin:\n  keys: [%q]\n", hookAdminKey) +
		fmt.Sprintf("hooks:\n  enabled: true\n  dir: %q\n  watch: true\n  timeout: 50ms\n  scripts: [%s]\n",
			dir, strings.Join(quoted, ", ")) +
		s.Hooks
	path := filepath.Join(home, "timgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &hookGateway{gateway: startTestGateway(t, name, gwConfig{File: path}), Dir: dir}
}

// writeScript replaces a script the way editors save: a temporary file renamed over it.
// It returns the time of the rename.
func (g *hookGateway) writeScript(t *testing.T, name, content string) time.Time {
	t.Helper()
	writeFileAtomic(t, filepath.Join(g.Dir, name), content)
	return time.Now()
}

// scriptHash is the hash /admin/status shows for content: the first 12 hex digits of
// its SHA-256.
func scriptHash(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:6])
}

// ---- admin status, metrics, log ----

// scriptStatus is one entry of parts.hooks in /admin/status.
type scriptStatus struct {
	Name      string `json:"name"`
	Hash      string `json:"hash"`
	Version   int    `json:"version"`
	Active    bool   `json:"active"`
	Hooks     []any  `json:"hooks"`
	LastError string `json:"lastError"`
}

// adminGet does GET path with the admin key and requires 200.
func adminGet(t *testing.T, g *gateway, path string) []byte {
	t.Helper()
	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	defer api.CloseIdle()
	r, err := api.Do(http.MethodGet, path, nil, "X-Admin-Key", hookAdminKey)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %s", path, r)
	}
	return r.Body
}

// hookStatus returns parts.hooks of /admin/status by script name.
func hookStatus(t *testing.T, g *gateway) map[string]scriptStatus {
	t.Helper()
	body := adminGet(t, g, "/admin/status")
	var doc struct {
		Parts map[string]json.RawMessage `json:"parts"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/admin/status: %v: %.500s", err, body)
	}
	raw, ok := doc.Parts["hooks"]
	if !ok {
		t.Fatalf("/admin/status has no parts.hooks: %.1000s", body)
	}
	var list []scriptStatus
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("/admin/status parts.hooks: %v: %.1000s", err, raw)
	}
	out := make(map[string]scriptStatus, len(list))
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// mustScriptStatus returns the status of script name.
func mustScriptStatus(t *testing.T, g *gateway, name string) scriptStatus {
	t.Helper()
	all := hookStatus(t, g)
	s, ok := all[name]
	if !ok {
		t.Fatalf("/admin/status parts.hooks has no %s: %s", name, jsonString(all))
	}
	return s
}

var metricLine = regexp.MustCompile(`^(\w+)\{([^}]*)\}\s+(\S+)$`)

// hookFailures sums timgw_hook_failures_total over the series with the given labels
// (name="value" pairs) from /metrics.
func hookFailures(t *testing.T, g *gateway, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(string(adminGet(t, g, "/metrics")), "\n") {
		m := metricLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || m[1] != "timgw_hook_failures_total" {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(","+m[2]+",", ","+l+",")
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// logLine returns the first line of g's log from offset off that contains every one of
// subs, or "".
func logLine(g *gateway, off int, subs ...string) string {
	for _, line := range strings.Split(g.log.From(off), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return line
		}
	}
	return ""
}

// waitLogLine polls g's log from off until a line contains every one of subs, failing
// t after reloadDeadline.
func waitLogLine(t *testing.T, g *gateway, off int, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(reloadDeadline)
	for {
		if l := logLine(g, off, subs...); l != "" {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("no gateway log line with %q within %v", subs, reloadDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pollUntil calls try every pollEvery until it reports done, failing t when
// reloadDeadline passed since start. It returns the time from start to success.
func pollUntil(t *testing.T, start time.Time, what string, try func() bool) time.Duration {
	t.Helper()
	for {
		if try() {
			return time.Since(start)
		}
		if time.Since(start) > reloadDeadline {
			t.Fatalf("%s: not seen within %v", what, reloadDeadline)
		}
		time.Sleep(pollEvery)
	}
}

// ---- chats ----

// send sends a private chat from c to `to` and returns the cmd 12 answer.
func send(t *testing.T, c *timclient.Conn, to, content string) *timclient.Response {
	t.Helper()
	r, err := c.ChatTo(to, content, wait)
	if err != nil {
		t.Fatalf("chat %q to %s over %s: %v", content, to, c.Proto(), err)
	}
	return r
}

// mustRefused checks a refusal's code and reason.
func mustRefused(t *testing.T, what string, r *timclient.Response, code packet.Status, reason string) {
	t.Helper()
	if r.Code != code || r.Msg != reason {
		t.Fatalf("%s: answered code %d msg %q, want code %d msg %q", what, r.Code, r.Msg, code, reason)
	}
}

// mustRecvContents reads len(want) chats on c and checks their contents are want (in
// any order), then that no other chat arrived (heartbeat barrier).
func mustRecvContents(t *testing.T, c *timclient.Conn, who string, want ...string) []*packet.Chat {
	t.Helper()
	var got []string
	var chats []*packet.Chat
	for range want {
		m, err := c.ExpectChat(wait)
		if err != nil {
			t.Fatalf("%s: %v (received so far: %q, want %q)", who, err, got, want)
		}
		got = append(got, m.Content)
		chats = append(chats, m)
	}
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s received %q, want %q", who, got, want)
	}
	mustNotGet(t, c, packet.CmdChatReq, who)
	return chats
}

// apiAnswer is the body of a /api/message/send answer.
type apiAnswer struct {
	Code packet.Status `json:"code"`
	Msg  string        `json:"msg"`
}

// apiSend posts a private chat from `from` to `to` with the HTTP API and returns the
// answer (HTTP 200 required).
func apiSend(t *testing.T, api *timclient.API, from, to, content string) apiAnswer {
	t.Helper()
	r, err := api.SendMessage(map[string]any{"from": from, "to": to, "chatType": 2, "msgType": 0, "content": content})
	if err != nil {
		t.Fatalf("POST /api/message/send: %v", err)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("POST /api/message/send: %s, want 200", r)
	}
	var a apiAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		t.Fatalf("POST /api/message/send: %v: %s", err, r)
	}
	return a
}

// ---- 1. the shipped moderation rule ----

// TestHookShippedModeration runs the gateway on conf/timgw.yaml as shipped: the
// moderation script it enables is scripts/moderation.lua (same hash); a chat with
// "badword" arrives masked at receivers over TCP and WebSocket (sent over TCP, WebSocket
// and the HTTP API); a chat without it, or with "badwords", arrives untouched; the 6th
// identical message within the flood window and the 21st message within the rate window
// are refused with 10028 and not delivered (the documented defaults: flood_max 5 per
// 30 s, rate_limit 20 per 10 s).
func TestHookShippedModeration(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "hook-shipped", gwConfig{File: "conf/timgw.yaml"})

	src, err := os.ReadFile(filepath.Join(moduleRoot, "scripts", "moderation.lua"))
	if err != nil {
		t.Fatal(err)
	}
	st := mustScriptStatus(t, g, "moderation.lua")
	if !st.Active || st.Hash != scriptHash(src) || st.LastError != "" {
		t.Fatalf("moderation.lua status %s, want active with hash %s (scripts/moderation.lua) and no error",
			jsonString(st), scriptHash(src))
	}
	if l := logLine(g, 0, "hooks: scripts directory not found"); l != "" {
		t.Logf("the shipped dir (scripts, relative to the working directory) is absent there; the built-in copy runs: %s", l)
	}

	api := timclient.NewAPI("http://"+g.Addr, "dev-api-key", nil)
	t.Cleanup(api.CloseIdle)

	t.Run("mask", func(t *testing.T) {
		for _, tc := range []struct{ from, to endpoint }{
			{from: epTCP, to: epWS},
			{from: epWS, to: epTCP},
			{from: epHTTP, to: epTCP},
			{from: epHTTP, to: epWS},
		} {
			t.Run(string(tc.from)+"->"+string(tc.to), func(t *testing.T) {
				t.Parallel()
				sender, receiver := uid("mod-"+string(tc.from)), uid("mod-"+string(tc.to))
				rc := g.login(t, tc.to, receiver)
				cases := []struct{ sent, want string }{
					{sent: "this is a badword here", want: "this is a ******* here"},
					{sent: "BadWord at the start", want: "******* at the start"},
					{sent: "a normal chat, nothing to hide", want: "a normal chat, nothing to hide"},
					{sent: "badwords is not the word", want: "badwords is not the word"},
				}
				var sc *timclient.Conn
				if tc.from != epHTTP {
					sc = g.login(t, tc.from, sender)
				}
				for _, c := range cases {
					if sc != nil {
						mustAccepted(t, send(t, sc, receiver, c.sent), nil)
					} else if a := apiSend(t, api, sender, receiver, c.sent); a.Code != packet.StatusOK {
						t.Fatalf("HTTP send %q: code %d %q, want 10000", c.sent, a.Code, a.Msg)
					}
					m := mustRecvChat(t, rc, "receiver")
					if m.Content != c.want || m.From != packet.Str(sender) {
						t.Errorf("sent %q: receiver got %q from %q, want %q from %q", c.sent, m.Content, m.From, c.want, sender)
					}
				}
				mustNotGet(t, rc, packet.CmdChatReq, "receiver")
			})
		}
	})

	t.Run("flood", func(t *testing.T) {
		t.Parallel()
		sender, receiver := uid("flood-tcp"), uid("flood-ws")
		sc, rc := g.login(t, epTCP, sender), g.login(t, epWS, receiver)
		const same = "buy now, limited offer"
		var want []string
		for i := 1; i <= 5; i++ {
			mustAccepted(t, send(t, sc, receiver, same), nil)
			want = append(want, same)
		}
		mustRefused(t, "6th identical message", send(t, sc, receiver, same), packet.StatusRateLimited, "the same message too many times")
		mustRefused(t, "7th identical message", send(t, sc, receiver, same), packet.StatusRateLimited, "the same message too many times")
		// The flood rule counts identical texts: another text still goes through.
		mustAccepted(t, send(t, sc, receiver, "something else"), nil)
		want = append(want, "something else")
		mustRecvContents(t, rc, "receiver", want...)
		mustSync(t, sc, "sender after the refusals")
	})

	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		sender, receiver := uid("rate-ws"), uid("rate-tcp")
		sc, rc := g.login(t, epWS, sender), g.login(t, epTCP, receiver)
		start := time.Now()
		var want []string
		for i := 1; i <= 20; i++ {
			text := fmt.Sprintf("message %d", i)
			mustAccepted(t, send(t, sc, receiver, text), nil)
			want = append(want, text)
		}
		r := send(t, sc, receiver, "message 21")
		elapsed := time.Since(start)
		if elapsed >= 10*time.Second {
			t.Fatalf("21 messages took %v, more than the 10 s rate window: the test cannot check the limit", elapsed)
		}
		mustRefused(t, "21st message in the rate window", r, packet.StatusRateLimited, "too many messages, slow down")
		t.Logf("21 messages in %v; the 21st refused with %d %q", elapsed.Round(time.Millisecond), r.Code, r.Msg)
		mustRecvContents(t, rc, "receiver", want...)
		mustSync(t, sc, "sender after the refusal")
	})
}

// ---- 2. a rule edited under live connections ----

// passScript has no opinion on any message.
const passScript = `-- rule.lua: lets every message through.
local M = {}

function M.message(msg, ctx)
  return "pass"
end

return M
`

// forbiddenReason is what rejectScript answers.
const forbiddenReason = "the word forbidden is not allowed here"

// rejectScript refuses messages containing "forbidden".
const rejectScript = `-- rule.lua: no "forbidden".
local tim = tim
local M = {}

function M.message(msg, ctx)
  if msg.content:find("forbidden", 1, true) then
    return "reject", "` + forbiddenReason + `", tim.REJECTED
  end
end

return M
`

// TestHookRuleReloadUnderLiveConnections starts with a rule that passes everything,
// logs clients in over TCP and WebSocket, and rewrites the rule on disk (temporary file
// renamed over it) to refuse "forbidden": within reloadBound new messages with the word
// are refused with 10027 and the rule's reason from TCP, WebSocket and the HTTP API; the
// same connections stay open (heartbeat round trips), others still go through, and
// every message accepted before or after the edit was delivered.
func TestHookRuleReloadUnderLiveConnections(t *testing.T) {
	t.Parallel()
	g := startHookGateway(t, "hook-reload", hookSetup{
		Files:   map[string]string{"rule.lua": passScript},
		Scripts: []string{"rule.lua"},
	})
	if st := mustScriptStatus(t, g.gateway, "rule.lua"); !st.Active || st.Hash != scriptHash([]byte(passScript)) {
		t.Fatalf("rule.lua status %s, want the pass-everything version active", jsonString(st))
	}
	alice, bob := uid("reload-tcp"), uid("reload-ws")
	ac, bc := g.login(t, epTCP, alice), g.login(t, epWS, bob)
	var toBob, toAlice []string

	mustAccepted(t, send(t, ac, bob, "forbidden fruit before the edit"), nil)
	toBob = append(toBob, "forbidden fruit before the edit")
	mustAccepted(t, send(t, bc, alice, "forbidden words are fine for now"), nil)
	toAlice = append(toAlice, "forbidden words are fine for now")
	mustRecvContents(t, bc, "bob before the edit", toBob...)
	mustRecvContents(t, ac, "alice before the edit", toAlice...)
	toBob, toAlice = nil, nil

	off := g.log.Len()
	edited := g.writeScript(t, "rule.lua", rejectScript)
	n := 0
	latency := pollUntil(t, edited, "the edited rule refusing a TCP message", func() bool {
		n++
		text := fmt.Sprintf("forbidden attempt %d", n)
		r := send(t, ac, bob, text)
		switch r.Code {
		case packet.StatusOK:
			toBob = append(toBob, text) // still the old rule: delivered
			return false
		case packet.StatusRejected:
			mustRefused(t, "TCP message after the edit", r, packet.StatusRejected, forbiddenReason)
			return true
		}
		t.Fatalf("%q: code %d %q, want 10000 (old rule) or 10027 (new rule)", text, r.Code, r.Msg)
		return false
	})
	t.Logf("reload latency (rename to the first refused message, %d messages sent): %v", n, latency.Round(time.Millisecond))
	if latency > reloadBound {
		t.Errorf("the edited rule took %v to apply, want under %v", latency, reloadBound)
	}
	loaded := waitLogLine(t, g.gateway, off, "hooks: script loaded", "script=rule.lua", "version=2")
	t.Logf("gateway log: %s", loaded)

	mustRefused(t, "WebSocket message after the edit", send(t, bc, alice, "forbidden from the browser"),
		packet.StatusRejected, forbiddenReason)
	if a := apiSend(t, g.api(t, epHTTP), uid("reload-http"), bob, "forbidden by API"); a.Code != packet.StatusRejected || a.Msg != forbiddenReason {
		t.Errorf("HTTP API message after the edit: code %d %q, want 10027 %q", a.Code, a.Msg, forbiddenReason)
	}
	mustAccepted(t, send(t, ac, bob, "allowed after the edit"), nil)
	toBob = append(toBob, "allowed after the edit")
	mustAccepted(t, send(t, bc, alice, "also allowed after the edit"), nil)
	toAlice = append(toAlice, "also allowed after the edit")

	// The same connections: open, nothing lost, refused messages not delivered.
	mustRecvContents(t, bc, "bob (WebSocket, connected before the edit)", toBob...)
	mustRecvContents(t, ac, "alice (TCP, connected before the edit)", toAlice...)
	for _, c := range []*timclient.Conn{ac, bc} {
		if l := logLine(g.gateway, off, "connection closed", "remote="+c.NetConn().LocalAddr().String()); l != "" {
			t.Errorf("a client connection closed during the reload: %s", l)
		}
	}
	st := mustScriptStatus(t, g.gateway, "rule.lua")
	if !st.Active || st.Version != 2 || st.Hash != scriptHash([]byte(rejectScript)) || st.LastError != "" {
		t.Errorf("rule.lua status %s, want version 2 active with the new hash and no error", jsonString(st))
	}
}

// ---- 3. a broken script ----

// brokenScript would refuse every message, but does not compile: line 4 is a syntax
// error.
const brokenScript = `-- rule.lua: refuse everything (broken).
local M = {}
function M.message(msg, ctx)
  local reason = = "no messages at all"
  return "reject", reason
end
return M
`

// failingScript compiles but fails while loading, at line 3.
const failingScript = `-- rule.lua: fails at load.
local M = {}
error("cannot start: no word list")
function M.message(msg, ctx) return "reject", "everything" end
return M
`

// fixedReason is what fixedScript answers.
const fixedReason = "forbidden: refused by the fixed rule"

// fixedScript is a later valid version of the rule.
const fixedScript = `-- rule.lua: no "forbidden" (fixed).
local tim = tim
local M = {}
function M.message(msg, ctx)
  if msg.content:find("forbidden", 1, true) then
    return "reject", "` + fixedReason + `", tim.REJECTED
  end
end
return M
`

// TestHookBrokenScriptKeepsOldVersion writes a script with a syntax error, then one that
// fails at load, over a working rule: each is rejected, reported in the log and in
// /admin/status (script name and line), and the old rule keeps working (same refusals,
// same deliveries, same connections). A valid version written afterwards loads.
func TestHookBrokenScriptKeepsOldVersion(t *testing.T) {
	t.Parallel()
	g := startHookGateway(t, "hook-broken", hookSetup{
		Files:   map[string]string{"rule.lua": rejectScript},
		Scripts: []string{"rule.lua"},
	})
	alice, bob := uid("broken-tcp"), uid("broken-ws")
	ac, bc := g.login(t, epTCP, alice), g.login(t, epWS, bob)
	before := mustScriptStatus(t, g.gateway, "rule.lua")
	if !before.Active || before.Version != 1 || before.Hash != scriptHash([]byte(rejectScript)) {
		t.Fatalf("rule.lua status %s, want version 1 active", jsonString(before))
	}

	// oldRuleWorks checks the version of rejectScript is what runs.
	step := 0
	oldRuleWorks := func(when string) {
		t.Helper()
		step++
		mustRefused(t, when+": TCP", send(t, ac, bob, "forbidden "+when), packet.StatusRejected, forbiddenReason)
		mustRefused(t, when+": WebSocket", send(t, bc, alice, "forbidden "+when), packet.StatusRejected, forbiddenReason)
		okA, okB := fmt.Sprintf("hello bob %d", step), fmt.Sprintf("hello alice %d", step)
		mustAccepted(t, send(t, ac, bob, okA), nil)
		mustAccepted(t, send(t, bc, alice, okB), nil)
		mustRecvContents(t, bc, "bob "+when, okA)
		mustRecvContents(t, ac, "alice "+when, okB)
	}
	oldRuleWorks("before")

	for _, tc := range []struct {
		name, content string
		errLine       string // in the log and the status
	}{
		{name: "syntax error", content: brokenScript, errLine: "rule.lua line:4"},
		{name: "load error", content: failingScript, errLine: "rule.lua:3"},
	} {
		off := g.log.Len()
		written := g.writeScript(t, "rule.lua", tc.content)
		line := waitLogLine(t, g.gateway, off, "hooks: script rejected", "script=rule.lua")
		t.Logf("%s: rejected %v after the write; gateway log: %s", tc.name, time.Since(written).Round(time.Millisecond), line)
		if !strings.Contains(line, tc.errLine) || !strings.Contains(line, "kept_version=1") {
			t.Errorf("%s: the log line does not name %q and the kept version 1: %s", tc.name, tc.errLine, line)
		}
		st := mustScriptStatus(t, g.gateway, "rule.lua")
		if !st.Active || st.Version != 1 || st.Hash != before.Hash || !strings.Contains(st.LastError, tc.errLine) {
			t.Errorf("%s: /admin/status rule.lua %s, want version 1 (hash %s) still active and lastError naming %q",
				tc.name, jsonString(st), before.Hash, tc.errLine)
		}
		oldRuleWorks("after the " + tc.name)
	}

	fixed := g.writeScript(t, "rule.lua", fixedScript)
	latency := pollUntil(t, fixed, "the fixed rule", func() bool {
		r := send(t, ac, bob, "forbidden after the fix")
		if r.Code != packet.StatusRejected {
			t.Fatalf("after the fix: code %d %q, want 10027", r.Code, r.Msg)
		}
		return r.Msg == fixedReason
	})
	t.Logf("fixed version active %v after the write", latency.Round(time.Millisecond))
	st := mustScriptStatus(t, g.gateway, "rule.lua")
	if !st.Active || st.Version != 2 || st.Hash != scriptHash([]byte(fixedScript)) || st.LastError != "" {
		t.Errorf("rule.lua status after the fix %s, want version 2 active, no error", jsonString(st))
	}
	mustSync(t, ac, "alice")
	mustSync(t, bc, "bob")
}

// ---- 4. a runaway script ----

// runawayScript never returns for messages containing "spin".
const runawayScript = `-- runaway.lua
local M = {}
function M.message(msg, ctx)
  if msg.content:find("spin", 1, true) then
    while true do end
  end
end
return M
`

// runawayFixed is the fixed version: it marks messages containing "spin".
const runawayFixed = `-- runaway.lua (fixed)
local M = {}
function M.message(msg, ctx)
  if msg.content:find("spin", 1, true) then
    msg.content = msg.content .. " (checked)"
  end
end
return M
`

// runawayBound is how fast the sender of a message whose script runs away must be
// answered (timeout 50 ms: about 60 ms is usual; the margin covers the first call, which
// creates a Lua state, and the race detector on busy cores). runawayMedian bounds the
// median answer time of the runaway calls.
const (
	runawayBound  = 2 * time.Second
	runawayMedian = 500 * time.Millisecond
)

// TestHookRunawayScriptStopped runs a message hook that loops forever on some messages,
// under fail_open and fail_closed: each such message is answered within runawayBound
// (fail_open: accepted and delivered unchanged; fail_closed: 10027, not delivered), the
// timeouts are logged and counted, other clients are served meanwhile, and a fixed
// script written afterwards runs.
func TestHookRunawayScriptStopped(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"fail_open", "fail_closed"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			g := startHookGateway(t, "hook-runaway-"+strings.ReplaceAll(policy, "_", "-"), hookSetup{
				Files:   map[string]string{"runaway.lua": runawayScript},
				Scripts: []string{"runaway.lua"},
				Hooks:   fmt.Sprintf("  message: {policy: %s}\n", policy),
			})
			spinner, other, receiver := uid("spin-tcp"), uid("other-tcp"), uid("recv-ws")
			sc, oc, rc := g.login(t, epTCP, spinner), g.login(t, epTCP, other), g.login(t, epWS, receiver)
			off := g.log.Len()

			// The spinner sends runaway messages one after the other while another
			// client chats and heartbeats.
			const spins = 10
			type result struct {
				code    packet.Status
				msg     string
				latency time.Duration
				err     error
			}
			results := make(chan result, spins)
			go func() {
				defer close(results)
				for i := 1; i <= spins; i++ {
					start := time.Now()
					r, err := sc.ChatTo(receiver, fmt.Sprintf("spin %d", i), wait)
					res := result{latency: time.Since(start), err: err}
					if r != nil {
						res.code, res.msg = r.Code, r.Msg
					}
					results <- res
					if err != nil {
						return
					}
				}
			}()
			var want []string
			for i := 1; i <= 5; i++ {
				text := fmt.Sprintf("hello meanwhile %d", i)
				start := time.Now()
				mustAccepted(t, send(t, oc, receiver, text), nil)
				if d := time.Since(start); d > runawayBound {
					t.Errorf("another client's message took %v during the runaway calls", d)
				}
				want = append(want, text)
				mustSync(t, oc, "the other client")
			}
			var worst time.Duration
			var lat []string
			var all []time.Duration
			i := 0
			for res := range results {
				i++
				if res.err != nil {
					t.Fatalf("spin %d: %v", i, res.err)
				}
				worst = max(worst, res.latency)
				lat = append(lat, res.latency.Round(time.Millisecond).String())
				all = append(all, res.latency)
				if res.latency > runawayBound {
					t.Errorf("spin %d answered after %v, want under %v", i, res.latency, runawayBound)
				}
				switch {
				case policy == "fail_open" && res.code == packet.StatusOK:
					want = append(want, fmt.Sprintf("spin %d", i))
				case policy == "fail_closed" && res.code == packet.StatusRejected:
				default:
					t.Errorf("spin %d under %s: code %d %q", i, policy, res.code, res.msg)
				}
				if i == 1 {
					t.Logf("spin 1 answered with %d %q", res.code, res.msg)
				}
			}
			if i != spins {
				t.Fatalf("%d spin answers, want %d", i, spins)
			}
			slices.Sort(all)
			median := all[len(all)/2]
			t.Logf("%d runaway calls answered, median %v, slowest %v (each: %s)", spins,
				median.Round(time.Millisecond), worst.Round(time.Millisecond), strings.Join(lat, " "))
			if median > runawayMedian {
				t.Errorf("runaway calls answered in %v (median), want under %v", median, runawayMedian)
			}
			mustRecvContents(t, rc, "receiver", want...)
			mustSync(t, sc, "the spinner's connection")

			line := waitLogLine(t, g.gateway, off, "hooks: script failed", "script=runaway.lua", "kind=timeout")
			t.Logf("gateway log: %s", line)
			if n := hookFailures(t, g.gateway, `hook="message"`, `script="runaway.lua"`, `kind="timeout"`); n < spins {
				t.Errorf("timgw_hook_failures_total{hook=message,script=runaway.lua,kind=timeout} = %v, want >= %d", n, spins)
			}

			// A later fixed script runs.
			fixed := g.writeScript(t, "runaway.lua", runawayFixed)
			n := 0
			latency := pollUntil(t, fixed, "the fixed script", func() bool {
				n++
				text := fmt.Sprintf("spin again %d", n)
				r := send(t, sc, receiver, text)
				if r.Code == packet.StatusRejected && policy == "fail_closed" {
					return false // the runaway version still
				}
				mustAccepted(t, r, nil)
				m := mustRecvChat(t, rc, "receiver")
				switch m.Content {
				case text + " (checked)":
					return true
				case text:
					if policy == "fail_closed" {
						t.Fatalf("receiver got %q unchanged under fail_closed", m.Content)
					}
					return false // fail_open, the runaway version still
				}
				t.Fatalf("receiver got %q, want %q or %q", m.Content, text, text+" (checked)")
				return false
			})
			t.Logf("fixed script active %v after the write (%d messages sent)", latency.Round(time.Millisecond), n)
			start := time.Now()
			mustAccepted(t, send(t, sc, receiver, "spin once more"), nil)
			if d := time.Since(start); d > runawayBound {
				t.Errorf("a message through the fixed script took %v", d)
			}
			mustRecvContents(t, rc, "receiver", "spin once more (checked)")
		})
	}
}

// ---- 5. auth, connect and join hooks ----

// hookJWTSecret is auth_jwt.lua's secret in TestHookAuthJWT.
const hookJWTSecret = "hook-jwt-secret"

// hookToken returns an HS256 token signed with secret for sub, with extra claims.
func hookToken(t *testing.T, secret, sub string, exp time.Time, extra jwt.MapClaims) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": exp.Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHookAuthJWT runs scripts/auth_jwt.lua in front of the open authenticator: a valid
// token logs in as its sub (with its nick and groups) via cmd 3, cmd 5 and the WebSocket
// query; a token with a bad signature, an expired one, or one for another user is refused
// with 10010 (cmd 3) or 10008 (cmd 5) and the rule's message, leaving the connection
// logged out; a login without a token is left to the built-in authenticator.
func TestHookAuthJWT(t *testing.T) {
	t.Parallel()
	g := startHookGateway(t, "hook-jwt", hookSetup{
		Copy:    []string{"auth_jwt.lua"},
		Scripts: []string{"auth_jwt.lua"},
		Hooks:   fmt.Sprintf("  vars:\n    auth_jwt: {secret: %q}\n", hookJWTSecret),
	})
	now := time.Now()
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			// A password login: no token, the open authenticator decides.
			peer := uid("jwt-hook-peer")
			pc := g.login(t, epTCP, peer)

			loggedInAs := func(c *timclient.Conn, r *timclient.Response, sub string) {
				t.Helper()
				var u packet.User
				if err := jsonUnmarshal(r.User, &u); err != nil || u.UserID != sub {
					t.Errorf("answer user %s (%v), want userId %q", r.User, err, sub)
				}
				mustAccepted(t, send(t, c, peer, "hello from "+sub), nil)
				if m := mustRecvChat(t, pc, "peer"); m.From != packet.Str(sub) {
					t.Errorf("peer got a chat from %q, want the token's sub %q", m.From, sub)
				}
			}

			t.Run("cmd 3 valid", func(t *testing.T) {
				sub, grp := uid("jwt-hook-a"), uid("jwt-hook-grp")
				c := g.dial(t, ep)
				r, err := c.Auth(hookToken(t, hookJWTSecret, sub, now.Add(time.Hour),
					jwt.MapClaims{"nick": "Ann", "groups": []string{grp}}), wait)
				mustCode(t, "cmd 3 with a valid token", r, err, packet.StatusAuthOK)
				var u packet.User
				if err := jsonUnmarshal(r.User, &u); err != nil || u.Nick != "Ann" || !slices.Contains(u.Groups, grp) {
					t.Errorf("answer user %s (%v), want nick Ann and group %s from the token", r.User, err, grp)
				}
				loggedInAs(c, r, sub)
			})
			t.Run("cmd 5 valid", func(t *testing.T) {
				sub := uid("jwt-hook-b")
				c := g.dial(t, ep)
				r, err := c.LoginToken(hookToken(t, hookJWTSecret, sub, now.Add(time.Hour), nil), wait)
				mustCode(t, "cmd 5 with a valid token", r, err, packet.StatusLoginOK)
				loggedInAs(c, r, sub)
			})
			if ep == epWS {
				t.Run("ws query valid", func(t *testing.T) {
					sub := uid("jwt-hook-q")
					c := dialURL(t, epWS.url(g.Addr, "/?token="+url.QueryEscape(hookToken(t, hookJWTSecret, sub, now.Add(time.Hour), nil))))
					p, err := c.Expect(packet.CmdLoginResp, wait)
					if err != nil {
						t.Fatal(err)
					}
					r, err := timclient.DecodeResponse(p)
					mustCode(t, "WebSocket ?token= login", r, err, packet.StatusLoginOK)
					loggedInAs(c, r, sub)
				})
			}
			for _, tc := range []struct {
				name   string
				cmd    packet.Cmd
				body   func(sub string) any
				code   packet.Status
				reason string
			}{
				{name: "cmd 3 wrong secret", cmd: packet.CmdAuthReq, code: packet.StatusAuthFailed, reason: "invalid token",
					body: func(sub string) any {
						return packet.Auth{Token: hookToken(t, "not-the-secret", sub, now.Add(time.Hour), nil)}
					}},
				{name: "cmd 3 garbage", cmd: packet.CmdAuthReq, code: packet.StatusAuthFailed, reason: "invalid token",
					body: func(string) any { return packet.Auth{Token: "not.a.jwt"} }},
				{name: "cmd 5 wrong secret", cmd: packet.CmdLoginReq, code: packet.StatusLoginFailed, reason: "invalid token",
					body: func(sub string) any {
						return packet.Login{Token: hookToken(t, "not-the-secret", sub, now.Add(time.Hour), nil)}
					}},
				{name: "cmd 5 expired", cmd: packet.CmdLoginReq, code: packet.StatusLoginFailed, reason: "invalid token",
					body: func(sub string) any {
						return packet.Login{Token: hookToken(t, hookJWTSecret, sub, now.Add(-time.Hour), nil)}
					}},
				{name: "cmd 5 another user", cmd: packet.CmdLoginReq, code: packet.StatusLoginFailed, reason: "the token is not for user",
					body: func(sub string) any {
						return packet.Login{UserID: packet.Str(sub + "-other"), Token: hookToken(t, hookJWTSecret, sub, now.Add(time.Hour), nil)}
					}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := g.dial(t, ep)
					r, err := c.Request(tc.cmd, tc.body(uid("jwt-hook-bad")), wait)
					mustCode(t, tc.name, r, err, tc.code)
					if !strings.Contains(r.Msg, tc.reason) {
						t.Errorf("%s: msg %q, want it to contain %q", tc.name, r.Msg, tc.reason)
					}
					r = send(t, c, peer, "am I logged in?")
					mustCode(t, "chat after the refusal", r, nil, packet.StatusNotLoggedIn)
				})
			}
		})
	}
}

// gateScript is a connect and join rule configured by hooks.vars.gate.
const gateScript = `-- gate.lua: connect and join rules.
local tim = tim
local cfg = tim.config("gate") or {}

local function set(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[tostring(v)] = true end
  return s
end

local deny_hosts = set(cfg.deny_hosts)
local deny_protocols = set(cfg.deny_protocols)
local closed_prefix = cfg.closed_prefix or "closed-"

local M = {}

function M.connect(conn)
  local host = conn.addr:match("^(.*):%d+$") or conn.addr
  if deny_hosts[host] then
    return "deny", "address " .. host .. " is blocked"
  end
  if deny_protocols[conn.protocol] then
    return "deny", "protocol " .. conn.protocol .. " is blocked"
  end
end

function M.join(j)
  if j.group:sub(1, #closed_prefix) == closed_prefix then
    return "deny", "group " .. j.group .. " is closed"
  end
end

return M
`

// TestHookConnectAndJoin runs a connect hook that denies the address 127.0.0.2 and the
// WebSocket protocol, and a join hook that denies groups named closed-*: denied
// connections are closed without being served, allowed ones work; cmd 7 for a closed
// group is answered with 10012 and the rule's reason, and the user is not a member.
func TestHookConnectAndJoin(t *testing.T) {
	t.Parallel()
	g := startHookGateway(t, "hook-gate", hookSetup{
		Files:   map[string]string{"gate.lua": gateScript},
		Scripts: []string{"gate.lua"},
		Hooks:   "  vars:\n    gate: {deny_hosts: [\"127.0.0.2\"], deny_protocols: [ws], closed_prefix: closed-}\n",
	})

	// notServed checks that a denied connection is closed and never logged in.
	notServed := func(t *testing.T, c *timclient.Conn, who string) {
		t.Helper()
		_ = c.Send(packet.CmdLoginReq, packet.Login{UserID: packet.Str(uid("denied")), Password: "x"})
		got, err := c.ExpectClosed(wait)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		for _, p := range got {
			if r, err := timclient.DecodeResponse(p); err == nil && p.Cmd == packet.CmdLoginResp && r.Code == packet.StatusLoginOK {
				t.Errorf("%s: a denied connection was logged in: %s", who, p.Body)
			}
		}
		t.Logf("%s: closed by the gateway after %s", who, timclient.Describe(got))
	}

	t.Run("connect", func(t *testing.T) {
		t.Parallel()
		off := g.log.Len()
		ok := g.login(t, epTCP, uid("gate-ok"))

		c, err := timclient.Dial("tcp://"+g.Addr, &timclient.Options{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}})
		if err != nil {
			t.Fatalf("dial from 127.0.0.2: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		notServed(t, c, "TCP from 127.0.0.2")

		wc, err := timclient.Dial(epWS.url(g.Addr, "/"), nil)
		if err != nil {
			t.Logf("WebSocket from 127.0.0.1: the upgrade failed (%v)", err)
		} else {
			t.Cleanup(func() { wc.Close() })
			notServed(t, wc, "WebSocket from 127.0.0.1")
		}
		for _, reason := range []string{"address 127.0.0.2 is blocked", "protocol ws is blocked"} {
			t.Logf("gateway log: %s", waitLogLine(t, g.gateway, off, "connection denied by a hook", "script=gate.lua", reason))
		}
		mustSync(t, ok, "the allowed TCP connection")
	})

	t.Run("join", func(t *testing.T) {
		t.Parallel()
		user := uid("gate-join")
		c := g.login(t, epTCP, user)
		open, closed := uid("open"), uid("closed")
		if _, err := c.JoinGroup(open, wait); err != nil {
			t.Fatalf("join %s: %v", open, err)
		}
		r, err := c.Request(packet.CmdJoinGroupReq, packet.JoinGroup{GroupID: packet.Str(closed)}, wait)
		mustCode(t, "join "+closed, r, err, packet.StatusJoinGroupFailed)
		if want := "group " + closed + " is closed"; r.Msg != want {
			t.Errorf("join %s: msg %q, want %q", closed, r.Msg, want)
		}
		r, err = c.ChatGroup(closed, "am I in?", wait)
		mustCode(t, "group chat to the refused group", r, err, packet.StatusNotGroupMember)
		r, err = c.ChatGroup(open, "I am in", wait)
		mustAccepted(t, r, err)
	})
}

// ---- 6. routing ----

// TestHookRoutingBot runs scripts/moderation.lua then scripts/routing.lua with bot_user
// set: chats to bot:<name> arrive at the bot user's connection with extras.bot and
// extras.botTo (moderation applied too), from TCP and the HTTP API; other chats are
// routed as usual.
func TestHookRoutingBot(t *testing.T) {
	t.Parallel()
	bot := uid("weatherbot")
	g := startHookGateway(t, "hook-routing", hookSetup{
		Copy:    []string{"moderation.lua", "routing.lua"},
		Scripts: []string{"moderation.lua", "routing.lua"},
		Hooks:   fmt.Sprintf("  vars:\n    moderation: {action: mask, words: [badword]}\n    routing: {bot_user: %q}\n", bot),
	})
	alice, bob := uid("route-alice"), uid("route-bob")
	bc := g.login(t, epWS, bot)
	ac, bobc := g.login(t, epTCP, alice), g.login(t, epTCP, bob)

	type extras struct {
		Bot   string `json:"bot"`
		BotTo string `json:"botTo"`
	}
	check := func(m *packet.Chat, from, content, name string) {
		t.Helper()
		var x extras
		if err := jsonUnmarshal(m.Extras, &x); err != nil {
			t.Errorf("bot got %s: extras: %v", jsonString(m), err)
		}
		if m.From != packet.Str(from) || m.To != packet.Str(bot) || m.Content != content ||
			x.Bot != name || x.BotTo != "bot:"+name {
			t.Errorf("bot got %s, want from %q to %q content %q extras bot=%q botTo=%q",
				jsonString(m), from, bot, content, name, "bot:"+name)
		}
	}

	mustAccepted(t, send(t, ac, "bot:weather", "weather in Paris?"), nil)
	check(mustRecvChat(t, bc, "bot"), alice, "weather in Paris?", "weather")
	mustAccepted(t, send(t, ac, "bot:weather", "badword forecast"), nil)
	check(mustRecvChat(t, bc, "bot"), alice, "******* forecast", "weather")
	sys := uid("route-http")
	if a := apiSend(t, g.api(t, epHTTP), sys, "bot:news", "headlines please"); a.Code != packet.StatusOK {
		t.Fatalf("HTTP API chat to bot:news: code %d %q", a.Code, a.Msg)
	}
	check(mustRecvChat(t, bc, "bot"), sys, "headlines please", "news")

	mustAccepted(t, send(t, ac, bob, "hi bob"), nil)
	m := mustRecvChat(t, bobc, "bob")
	if m.To != packet.Str(bob) || m.Content != "hi bob" || len(m.Extras) != 0 && string(m.Extras) != "{}" {
		t.Errorf("bob got %s, want the chat unchanged", jsonString(m))
	}
	mustNotGet(t, bc, packet.CmdChatReq, "bot")
	mustNotGet(t, ac, packet.CmdChatReq, "alice")
}
