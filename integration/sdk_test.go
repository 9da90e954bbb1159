package integration

// Tests of the JavaScript client SDK (sdk/js): its node --test suites run against a
// gateway, the gateway serves the module at /sdk/timgw.js, and /chat (built on it) chats
// in a browser. The node tests need node >= 20 on PATH and skip without it.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/timgw/timgw/core/packet"
)

// TestSDKNode runs the SDK's node --test suites (sdk/js/test/*.test.mjs) against a
// gateway: login, chats both ways with their cmd 12 answers, groups, typing, history and
// recall, offline messages after a reconnect, reconnection after a kick, receipts and the
// conversation list. It fails when node reports a failure, or skips a test for another
// reason than a command this gateway does not have (node tests skip those on 10014).
func TestSDKNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("SDK test skipped: node is not on PATH (Node.js >= 20 runs sdk/js/test): %v", err)
	}
	major, err := nodeMajor(node)
	if err != nil {
		t.Fatal(err)
	}
	if major < 20 {
		t.Skipf("SDK test skipped: %s is Node.js %d; the SDK needs Node.js >= 20 (its WebSocket)", node, major)
	}
	files, err := filepath.Glob(filepath.Join(moduleRoot, "sdk", "js", "test", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no SDK tests in sdk/js/test: %v", err)
	}
	g := mainGateway(t)
	args := []string{"--test", "--test-reporter=tap"}
	if major < 22 { // Node 20 and 21 have the global WebSocket behind this flag
		args = append([]string{"--experimental-websocket"}, args...)
	}
	args = append(args, files...)
	// Each node test has a timeout of its own (60 s); this bounds a node that hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = filepath.Join(moduleRoot, "sdk", "js")
	cmd.Env = append(os.Environ(),
		"TIMGW_SDK_WS="+epWS.url(g.Addr, "/"),
		"TIMGW_SDK_HTTP="+epHTTP.url(g.Addr, ""),
		"TIMGW_SDK_API_KEY="+testAPIKey)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed after %s: %v\n%s", time.Since(start).Round(time.Millisecond), err, out)
	}
	for _, want := range []string{"# fail 0", "# pass "} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("node --test output lacks %q:\n%s", want, out)
		}
	}
	// Every test ran, but those of commands this gateway does not have (a skip for any
	// other reason means the gateway was not found).
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "# SKIP") && !strings.Contains(l, "needs a gateway with") {
			t.Errorf("node test skipped: %s", l)
		}
	}
	t.Logf("node --test passed in %s:\n%s", time.Since(start).Round(time.Millisecond), tapSummary(out))
}

// nodeMajor returns the major version of the node binary ("v20.1.0" is 20).
func nodeMajor(node string) (int, error) {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", node, err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("%s --version: unexpected %q", node, out)
	}
	return n, nil
}

// tapSummary returns the result lines of TAP output: "ok"/"not ok" and the totals.
func tapSummary(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "not ok ") || strings.HasPrefix(l, "# tests") || strings.HasPrefix(l, "# pass") || strings.HasPrefix(l, "# skipped") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestSDKServed checks that the gateway serves the SDK's module and types, byte for byte
// the files of sdk/js, with a JavaScript content type (a browser refuses to run a module
// of another type).
func TestSDKServed(t *testing.T) {
	g := mainGateway(t)
	for _, c := range []struct{ path, file, ctype string }{
		{"/sdk/timgw.js", "src/timgw.js", "text/javascript"},
		{"/sdk/timgw.d.ts", "src/timgw.d.ts", "text/plain"},
	} {
		want, err := os.ReadFile(filepath.Join(moduleRoot, "sdk", "js", c.file))
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.Get(epHTTP.url(g.Addr, c.path))
		if err != nil {
			t.Fatalf("GET %s: %v", c.path, err)
		}
		got, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: %v", c.path, err)
		}
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: status %d, Content-Type %q; want 200 and %s", c.path, r.StatusCode, r.Header.Get("Content-Type"), c.ctype)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("GET %s: %d bytes differ from sdk/js/%s (%d bytes)", c.path, len(got), c.file, len(want))
		}
	}
}

// TestSDKBrowserChat loads /chat, which is built on the SDK, signs two users in and has
// them exchange messages; the page must have loaded the module from /sdk/timgw.js.
func TestSDKBrowserChat(t *testing.T) {
	b := newBrowser(t)
	g := mainGateway(t)
	ann, ben := uid("ann"), uid("ben")
	pa := chatTab(b, g, ann)
	pb := chatTab(b, g, ben)
	for _, tb := range []*tab{pa, pb} {
		if !evalJS[bool](tb, `performance.getEntriesByType("resource").some(e => new URL(e.name).pathname === "/sdk/timgw.js")`) {
			t.Errorf("tab %s did not load /sdk/timgw.js", tb.name)
		}
	}
	hello := "hello " + ben + " through the SDK"
	pa.openConversation(ben)
	pa.send(hello)
	pa.waitAck(hello, packet.StatusOK)
	pb.waitMessage(ann, hello)
	reply := "hi " + ann + ", received"
	pb.send(reply)
	pb.waitAck(reply, packet.StatusOK)
	pa.waitMessage(ben, reply)
	// Typing in the composer reaches the peer's page (cmd 23 → cmd 24).
	pb.do("type", chromedp.SendKeys(chromedp.ID("msg-input"), "t"))
	pa.waitText("#typing", ben+" is typing")
	pa.screenshot("sdk-chat-ann")

	// Sign out (the SDK's close: no reconnection) and in again from the form.
	pa.do("sign out", chromedp.Click(chromedp.ID("logout")))
	pa.waitJS("the sign-in form is back", `document.body.dataset.state === "login"`)
	pa.do("sign in again",
		chromedp.SetValue(chromedp.ID("login-user"), ann),
		chromedp.Click(chromedp.ID("login-btn")))
	pa.waitJS(ann+" is signed in again", `document.body.dataset.state === "online"`)
	pa.waitText("#status", "online as "+ann)
	if n := evalJS[int](pa, `document.querySelectorAll("#log li").length`); n == 0 || evalJS[string](pa, `document.body.dataset.disconnects || ""`) != "" {
		t.Errorf("after signing out and in: %d log entries, disconnects %q; want a fresh log and no disconnect", n,
			evalJS[string](pa, `document.body.dataset.disconnects || ""`))
	}
}
