package integration

// Browser tests of the pages the gateway serves: /dashboard and /chat, driven in headless
// Chromium over the DevTools protocol (github.com/chromedp/chromedp). They need
// /usr/bin/chromium (Debian: apt-get install chromium) and skip without
// it. Screenshots go to $TIMGW_SCREENSHOT_DIR (default: timgw-screenshots in the system
// temporary directory); each test logs the paths.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/timgw/timgw/core/admin"
	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// chromiumPath is the browser the tests drive.
const chromiumPath = "/usr/bin/chromium"

// browserWait bounds each wait for the page to show something. The pages poll or push
// within a second or two; the margin is for a gateway built with the race detector on
// busy cores.
const browserWait = 12 * time.Second

// browser is a headless Chromium for one test.
type browser struct {
	t   *testing.T
	ctx context.Context // has run once: tabs are made from it
}

// newBrowser starts Chromium for t (skipping t when it is not installed); it is stopped
// when t ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test skipped: no Chromium at %s (Debian: apt-get install -y chromium): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc) // stops Chromium and waits for it
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	// The first Run starts the browser; it must not have a deadline (a deadline would
	// stop the browser), so Chromium's start is bounded by a timer instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", chromiumPath, err)
		}
	case <-time.After(30 * time.Second):
		cancelBrowser()
		t.Fatalf("start %s: no answer within 30s", chromiumPath)
	}
	return &browser{t: t, ctx: bctx}
}

// tab is one browser tab (its own window, so that it is visible and animates).
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newTab opens a tab; name labels its screenshots and failures.
func (b *browser) newTab(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	tb := &tab{t: b.t, name: name, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	// A script error in the page fails the test: the pages must run cleanly.
	b.t.Cleanup(func() {
		for _, m := range tb.consoleMessages() {
			if m.IsException() {
				b.t.Errorf("tab %s: uncaught JavaScript exception: %s", name, m)
			}
		}
	})
	return tb
}

func (tb *tab) consoleMessages() []chromedp.ConsoleMessage {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), tb.console...)
}

// do runs steps in the tab within browserWait; on failure it fails the test with the
// page's text and a screenshot.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.fail(what, err)
	}
}

// waitJS waits until the JavaScript expression is truthy.
func (tb *tab) waitJS(what, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(browserWait)))
	if err != nil {
		tb.fail("waiting until "+what, err)
	}
}

// waitText waits until an element of the CSS selector shows text containing want.
func (tb *tab) waitText(sel, want string) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf("%s shows %q", sel, want),
		fmt.Sprintf(`[...document.querySelectorAll(%s)].some(e => e.innerText.includes(%s))`,
			jsonString(sel), jsonString(want)))
}

// waitExact waits until the element of the CSS selector shows exactly want.
func (tb *tab) waitExact(sel, want string) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf("%s shows exactly %q", sel, want),
		fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.innerText.trim() === %s; })()`,
			jsonString(sel), jsonString(want)))
}

// evalJS evaluates a JavaScript expression and decodes its value into T.
func evalJS[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.fail("evaluate "+expr, err)
	}
	return v
}

// text returns the rendered text of the first element of the CSS selector ("" when
// there is none).
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : ""; })()`,
		jsonString(sel)))
}

// fail fails the test with what went wrong, the page's text, its console and a
// screenshot.
func (tb *tab) fail(what string, err error) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	page, perr := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if perr != nil {
		page = "(page text unavailable: " + perr.Error() + ")"
	}
	if len(page) > 6000 {
		page = page[:6000] + "\n..."
	}
	var console strings.Builder
	for _, m := range tb.consoleMessages() {
		fmt.Fprintf(&console, "  %s\n", m)
	}
	shot := ""
	if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
		shot = writeScreenshot(tb.t, "FAILED-"+tb.t.Name()+"-"+tb.name, png)
	}
	tb.t.Fatalf("tab %s: %s: %v\nscreenshot: %s\n--- page text ---\n%s\n--- console ---\n%s", tb.name, what, err, shot, page, console.String())
}

// screenshot saves a PNG of the whole page and returns its path.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.fail("screenshot", err)
	}
	path := writeScreenshot(tb.t, name, png)
	tb.t.Logf("screenshot of tab %s: %s", tb.name, path)
	return path
}

// writeScreenshot writes a PNG into the screenshot directory.
func writeScreenshot(t *testing.T, name string, png []byte) string {
	t.Helper()
	dir := os.Getenv("TIMGW_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "timgw-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshot: %v", err)
		return ""
	}
	name = strings.NewReplacer("/", "-", " ", "_").Replace(name)
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot: %v", err)
		return ""
	}
	return path
}

// ---- /dashboard ----

// dashboardAdminKey is the admin key of the dashboard test's gateway.
const dashboardAdminKey = "browser-admin-key"

// dashboardConfig is the dashboard test's configuration: the test defaults, an admin
// key, and extraLimits inserted in the limits block. listen names the file's listen
// address (the -listen flag overrides it) and with it the storage directory.
func dashboardConfig(listen string, maxContent int, extraLimits string) string {
	s := gwConfig{MaxContentBytes: maxContent}.render(listen, nil)
	s = strings.Replace(s, "limits:\n", "limits:\n"+extraLimits, 1)
	return s + fmt.Sprintf("admin:\n  keys: [%q]\n", dashboardAdminKey)
}

// writeFileAtomic replaces a file in one step, so that a directory watcher never reads
// half of it.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// reloadAnswer is the answer of POST /admin/reload.
type reloadAnswer struct {
	Version string   `json:"version"`
	Trigger string   `json:"trigger"`
	Changed []string `json:"changed"`
	Skipped bool     `json:"skipped"`
	Error   string   `json:"error"`
}

// adminReload posts /admin/reload with the admin key and requires HTTP status want.
func adminReload(t *testing.T, g *gateway, want int) reloadAnswer {
	t.Helper()
	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	defer api.CloseIdle()
	r, err := api.Do(http.MethodPost, "/admin/reload", nil, "X-Admin-Key", dashboardAdminKey)
	if err != nil {
		t.Fatalf("POST /admin/reload: %v", err)
	}
	if r.Status != want {
		t.Fatalf("POST /admin/reload: %s, want HTTP %d", r, want)
	}
	var a reloadAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		t.Fatalf("POST /admin/reload: %v in %s", err, r)
	}
	return a
}

// statusParts returns the names of the components in the gateway's /admin/status.
func statusParts(t *testing.T, g *gateway) []string {
	t.Helper()
	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	defer api.CloseIdle()
	r, err := api.Do(http.MethodGet, "/admin/status", nil, "X-Admin-Key", dashboardAdminKey)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /admin/status: %v %v", r, err)
	}
	var st struct {
		Parts map[string]json.RawMessage `json:"parts"`
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatalf("GET /admin/status: %v", err)
	}
	var names []string
	for n := range st.Parts {
		names = append(names, n)
	}
	return names
}

// TestBrowserDashboard opens /dashboard in Chromium against a gateway with TCP and
// WebSocket clients: a wrong key is refused on the page, the right key (typed into the
// form) shows the connections by protocol, online users and traffic; a good and a bad
// config reload appear in the history; a stopped gateway is reported as unreachable.
func TestBrowserDashboard(t *testing.T) {
	b := newBrowser(t)
	cfgFile := filepath.Join(t.TempDir(), "timgw.yaml")
	listen, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	writeFileAtomic(t, cfgFile, dashboardConfig(listen, defMaxContent, ""))
	g := startTestGateway(t, "dashboard", gwConfig{File: cfgFile})

	var tcp []*timclient.Conn
	for range 3 {
		tcp = append(tcp, g.login(t, epTCP, uid("dash-tcp")))
	}
	g.login(t, epWS, uid("dash-ws"))

	page := b.newTab("dashboard")
	// A wrong key: refused, and the key form is offered.
	page.do("open /dashboard with a wrong key", chromedp.Navigate("http://"+g.Addr+"/dashboard#key=not-the-key"))
	page.waitText("#error", "refused")
	page.waitJS("the key form shows", `getComputedStyle(document.getElementById("key-panel")).display !== "none"`)
	if u := evalJS[string](page, `location.href`); strings.Contains(u, "not-the-key") {
		t.Errorf("the key stays in the address bar: %s", u)
	}

	// The right key, typed into the form.
	evalJS[bool](page, `(document.getElementById("key").value = "") === ""`)
	page.do("enter the admin key",
		chromedp.SendKeys(chromedp.ID("key"), dashboardAdminKey),
		chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)))
	page.waitText("#state", "live")
	page.waitExact(`#connections tr[data-proto="tcp"] .count`, "3")
	page.waitExact(`#connections tr[data-proto="ws"] .count`, "1")
	page.waitExact("#online-users", "4")
	// Every component of the status document has its panel.
	for _, name := range statusParts(t, g) {
		page.waitJS("component "+name+" is shown", fmt.Sprintf(`!!document.querySelector('#parts [data-part=%s]')`, jsonString(name)))
	}
	if s := page.text("#error"); s != "" && evalJS[bool](page, `document.getElementById("error").classList.contains("show")`) {
		t.Errorf("error banner shown with the right key: %q", s)
	}

	// Traffic: packets per second computed from two samples.
	for _, c := range tcp {
		if err := c.Heartbeat(wait); err != nil {
			t.Fatal(err)
		}
	}
	page.waitJS("a packet rate is shown", `/^[0-9]/.test(document.getElementById("rate-in").innerText)`)
	page.waitJS("packet totals are counted", `/^[1-9]/.test(document.getElementById("total-in").innerText)`)

	// A good edit, applied by POST /admin/reload (or already by the directory watcher).
	writeFileAtomic(t, cfgFile, dashboardConfig(listen, 2*defMaxContent, ""))
	good := adminReload(t, g, http.StatusOK)
	if good.Version == "" {
		t.Fatalf("reload answer without a version: %+v", good)
	}
	page.waitExact("#config-version", good.Version)
	page.waitJS("the reload is in the history", fmt.Sprintf(
		`[...document.querySelectorAll("#reloads tbody tr")].some(r => r.innerText.includes("applied") && r.innerText.includes(%s) && r.innerText.includes("limits"))`,
		jsonString(good.Version)))

	// A bad edit: refused, shown as an error, the previous version still running.
	writeFileAtomic(t, cfgFile, dashboardConfig(listen, 2*defMaxContent, "  bogus_limit: 5\n"))
	bad := adminReload(t, g, http.StatusUnprocessableEntity)
	if !strings.Contains(bad.Error, "bogus_limit") {
		t.Errorf("reload of a config with an unknown key: error %q, want it to name bogus_limit", bad.Error)
	}
	page.waitJS("the refused reload is highlighted in the history",
		`[...document.querySelectorAll("#reloads tbody tr.err")].some(r => r.innerText.includes("bogus_limit") && r.innerText.includes("refused"))`)
	page.waitText("#reload-meta", "refused")
	if v := page.text("#config-version"); v != good.Version {
		t.Errorf("config version after a refused reload: %q, want %q (the old config keeps running)", v, good.Version)
	}
	body := strings.ToLower(page.text("body")) // innerText is as shown: some labels are upper case
	for _, want := range []string{"Connections by protocol", "Online users", "Packets in", "Packets out", "Uptime",
		"Config version", "Reload history", "Components"} {
		if !strings.Contains(body, strings.ToLower(want)) {
			t.Errorf("dashboard text lacks %q", want)
		}
	}
	page.screenshot("dashboard")

	// The gateway goes away: the page says so.
	if err := g.stop(); err != nil {
		t.Error(err)
	}
	page.waitText("#error", "not reachable")
	page.waitText("#state", "down")
	page.screenshot("dashboard-gateway-down")
}

// TestBrowserDashboardComponents serves the dashboard from core/admin with a status
// document of components in trouble (a Lua script that failed to load, a codec plugin
// that is down), and checks that the page renders them generically and highlights the
// failures, as it must for components whose status shape it does not know.
func TestBrowserDashboardComponents(t *testing.T) {
	b := newBrowser(t)
	now := time.Now().UTC()
	status := map[string]any{
		"startedAt": now.Add(-26 * time.Hour), "uptime": "26h3m4s",
		"config": map[string]any{"version": "a1b2c3d4e5f6", "reloads": []map[string]any{
			{"version": "a1b2c3d4e5f6", "time": now.Add(-time.Hour), "trigger": "startup", "changed": []string{"all"}},
			{"version": "a1b2c3d4e5f6", "time": now.Add(-time.Minute), "trigger": "signal",
				"changed": []string{"limits"}, "restart": []string{"runtime.event_loops"}, "durationNs": 1834000},
		}},
		"connections": map[string]int{"tcp": 1200, "ws": 340, "tls": 12},
		"onlineUsers": 1480,
		"traffic":     map[string]int{"packetsIn": 1500, "packetsOut": 2400, "bytesIn": 150000, "bytesOut": 420000},
		"runtime":     map[string]int{"goroutines": 88, "heapBytes": 45 << 20, "sysBytes": 90 << 20, "numGC": 40},
		"parts": map[string]any{
			"lua": []map[string]any{
				{"name": "10-filter.lua", "hash": "ab12cd34ef56", "version": 3, "active": true, "hooks": []string{"message"}, "loadedAt": now.Add(-time.Hour)},
				{"name": "20-auth.lua", "version": 2, "active": true, "hooks": []string{"auth"}, "loadedAt": now.Add(-2 * time.Hour),
					"lastError": "20-auth.lua:14: '=' expected near 'ned'", "lastErrorAt": now.Add(-time.Minute)},
			},
			"codecPlugins": map[string]any{
				"mqtt": map[string]any{"healthy": true, "restarts": 0, "connections": 12},
				"line": map[string]any{"healthy": false, "restarts": 3, "lastError": "handshake: timeout after 5s"},
			},
			"storage": map[string]any{"plugin": "bolt", "state": "ok", "queuedBytes": 0},
		},
	}
	srv := httptestServer(t, admin.Handler(admin.Options{
		Keys:    func() []string { return []string{dashboardAdminKey} },
		Status:  func() any { return status },
		Reload:  func() (any, bool) { return map[string]any{"skipped": true}, true },
		Metrics: http.NotFoundHandler(),
	}))
	page := b.newTab("components")
	page.do("open /dashboard", chromedp.Navigate(srv+"/dashboard#key="+dashboardAdminKey))
	page.waitText("#state", "live")
	page.waitText("#parts-meta", "3 reporting, 2 with errors")
	page.waitJS("the lua part is marked failed", `document.querySelector('[data-part="lua"]').classList.contains("err")`)
	page.waitText(`[data-part="lua"] tr.err`, "'=' expected near 'ned'")
	page.waitText(`[data-part="codecPlugins"] tr.err`, "handshake: timeout after 5s")
	page.waitJS("the storage part is fine", `!document.querySelector('[data-part="storage"]').classList.contains("err") && document.querySelector('[data-part="storage"] .badge').innerText === "ok"`)
	page.waitText("#reloads", "restart needed: runtime.event_loops")
	page.waitText("#uptime", "1d 2h 03m")
	page.waitExact("#conn-total", "1,552")
	page.screenshot("dashboard-components")
}

// httptestServer serves h on a loopback port for t and returns its base URL.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// ---- /chat ----

// chatTab opens /chat signed in as user and waits until the page is online.
func chatTab(b *browser, g *gateway, user string) *tab {
	b.t.Helper()
	tb := b.newTab(user)
	tb.do("open /chat as "+user, chromedp.Navigate("http://"+g.Addr+"/chat#user="+user))
	tb.waitJS(user+" is signed in", `document.body.dataset.state === "online"`)
	tb.waitText("#status", "online as "+user)
	return tb
}

// send types a message into the open conversation and sends it.
func (tb *tab) send(text string) {
	tb.t.Helper()
	tb.do("send "+text,
		chromedp.SendKeys(chromedp.ID("msg-input"), text),
		chromedp.Click(chromedp.ID("send-btn")))
}

// waitMessage waits until the open conversation shows a message from sender (the
// page's "you" for one's own) with the text.
func (tb *tab) waitMessage(sender, text string) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf("a message from %s %q is shown", sender, text), fmt.Sprintf(
		`[...document.querySelectorAll("#messages .msg")].some(m => m.querySelector(".from").innerText === %s && m.querySelector(".content").innerText === %s && m.querySelector(".time").innerText !== "")`,
		jsonString(sender), jsonString(text)))
}

// waitAck waits until one's own message with the text shows an ack with code.
func (tb *tab) waitAck(text string, code packet.Status) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf("the message %q shows ack %d", text, code), fmt.Sprintf(
		`[...document.querySelectorAll("#messages .msg.own")].some(m => m.querySelector(".content").innerText === %s && m.querySelector(".ack")?.dataset.code === %s)`,
		jsonString(text), jsonString(fmt.Sprint(int(code)))))
}

// openConversation starts (or opens) a private chat from the sidebar form.
func (tb *tab) openConversation(peer string) {
	tb.t.Helper()
	tb.do("start a chat with "+peer,
		chromedp.SendKeys(chromedp.ID("peer-input"), peer),
		chromedp.Click(chromedp.CSS(`#peer-form button`)))
	tb.waitText("#conv-title", peer)
}

// joinGroup joins a group from the sidebar form and waits for the open group.
func (tb *tab) joinGroup(group string) {
	tb.t.Helper()
	tb.do("join group "+group,
		chromedp.SendKeys(chromedp.ID("group-input"), group),
		chromedp.Click(chromedp.CSS(`#group-form button`)))
	tb.waitText("#conv-title", "# "+group)
	tb.waitText("#messages", "You joined")
}

// TestBrowserChat signs alice and bob in on /chat in two tabs, and checks a private chat
// both ways, a group chat (with a TCP member as a witness), the ack of a message to an
// offline user, and the history view (the persistence-off notice without storage).
func TestBrowserChat(t *testing.T) {
	b := newBrowser(t)
	g := mainGateway(t)
	alice, bob, ghost, room := uid("alice"), uid("bob"), uid("ghost"), uid("room")

	pa := chatTab(b, g, alice)
	pb := chatTab(b, g, bob)

	// Private: alice → bob, then bob answers.
	hello := "hello " + bob + ", this is " + alice
	pa.openConversation(bob)
	pa.send(hello)
	pa.waitAck(hello, packet.StatusOK)
	pb.waitMessage(alice, hello) // bob had no conversation open: it opens by itself
	pb.waitText("#conv-title", alice)
	reply := "hi " + alice + ", café? <b>not bold</b>"
	pb.send(reply)
	pb.waitAck(reply, packet.StatusOK)
	pa.waitMessage(bob, reply)
	pa.waitMessage("you", hello)

	// Group: both join in the page; carol joins over TCP and sees the browser's message.
	carolID := uid("carol")
	carol := g.login(t, epTCP, carolID)
	if _, err := carol.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	pa.joinGroup(room)
	pb.joinGroup(room)
	pa.waitText("#messages", bob+" joined the group")
	toRoom := "hello " + room + " from the browser"
	pa.send(toRoom)
	pa.waitAck(toRoom, packet.StatusOK)
	pb.waitMessage(alice, toRoom)
	m := mustRecvChat(t, carol, "carol")
	if string(m.From) != alice || string(m.GroupID) != room || m.Content != toRoom || m.ChatType != packet.ChatTypeGroup {
		t.Errorf("carol (TCP) received %s, want alice's group message %q in %s", jsonString(m), toRoom, room)
	}
	fromCarol := "carol over TCP says hi"
	if r, err := carol.ChatGroup(room, fromCarol, wait); err != nil || r.Code != packet.StatusOK {
		t.Fatalf("carol's group message: %v %v", r, err)
	}
	pa.waitMessage(carolID, fromCarol)
	pb.waitMessage(carolID, fromCarol)

	// A message to a user who is offline: the ack says so (10001).
	pa.openConversation(ghost)
	offline := "are you there, " + ghost + "?"
	pa.send(offline)
	pa.waitAck(offline, packet.StatusOffline)
	pa.waitText("#log", "10001")

	// History of the private chat in the same tab: stored messages (already shown, so
	// not repeated), or the persistence-off notice when the gateway has no storage.
	pa.do("open the chat with "+bob, chromedp.Click(chromedp.CSS(`#convs li[data-conv="u:`+bob+`"]`)))
	pa.waitText("#conv-title", bob)
	pa.loadHistory()
	stored := !strings.Contains(pa.text("#messages"), "persistence is off")
	if !stored {
		pa.waitText("#log", "10022")
		t.Log("the gateway runs without storage: the history view shows the persistence-off notice")
	} else {
		pa.waitText("#messages", "already shown")
		if n := evalJS[int](pa, `document.querySelectorAll("#messages .msg.history").length`); n != 0 {
			t.Errorf("history repeated %d messages that were already shown", n)
		}
	}
	if errs := evalJS[int](pa, `document.querySelectorAll("#log li.err").length`); errs != 0 {
		t.Errorf("alice's protocol log shows %d errors:\n%s", errs, pa.text("#log"))
	}
	pa.screenshot("chat-alice")
	pb.do("open the group", chromedp.Click(chromedp.CSS(`#convs li[data-conv="g:`+room+`"]`)))
	pb.waitMessage(alice, toRoom)
	pb.screenshot("chat-bob")

	// alice on a second device: the conversations come back from history.
	pa2 := chatTab(b, g, alice)
	pa2.openConversation(bob)
	pa2.loadHistory()
	if stored {
		pa2.waitHistoryMessage("you", hello)
		pa2.waitHistoryMessage(bob, reply)
		pa2.joinGroup(room) // already a member: joining again opens the group
		pa2.loadHistory()
		pa2.waitHistoryMessage("you", toRoom)
		pa2.waitHistoryMessage(carolID, fromCarol)
	} else {
		pa2.waitText("#messages", "persistence is off")
	}
	pa2.screenshot("chat-alice-second-device")

	// ghost signs in: the page fetches the messages kept while ghost was offline.
	pg := chatTab(b, g, ghost)
	if stored {
		pg.waitMessage(alice, offline)
		pg.waitText("#messages", "offline message")
		pg.waitText(`#messages .msg[data-from="`+alice+`"] .htag`, "offline")
	} else {
		pg.waitText("#log", "10022") // the sign-in fetch, answered quietly
		pg.do("fetch offline messages", chromedp.Click(chromedp.ID("offline-btn")))
		pg.waitText("#banner", "persistence is off")
	}
	pg.screenshot("chat-ghost-offline")

	// alice recalls her first message: bob's page shows it recalled (or, without storage,
	// alice's page shows the refusal).
	pa.do("recall "+hello, chromedp.Click(chromedp.JSPath(fmt.Sprintf(
		`[...document.querySelectorAll("#messages .msg.own")].find(m => m.querySelector(".content").innerText === %s).querySelector("button.recall")`,
		jsonString(hello)))))
	if stored {
		pa.waitText("#messages .msg.own.recalled", "message recalled")
		pb.do("open the chat with "+alice, chromedp.Click(chromedp.CSS(`#convs li[data-conv="u:`+alice+`"]`)))
		pb.waitText(`#messages .msg.recalled[data-from="`+alice+`"]`, "message recalled")
		if strings.Contains(pb.text("#messages"), hello) {
			t.Errorf("bob's page still shows the recalled text %q", hello)
		}
		pb.screenshot("chat-bob-recalled")
	} else {
		pa.waitText("#messages .msg.own .ack", "10022")
	}
}

// loadHistory clicks the history button of the open conversation and waits for the
// answer to show.
func (tb *tab) loadHistory() {
	tb.t.Helper()
	n := evalJS[int](tb, `document.querySelectorAll("#messages .note").length`)
	tb.do("load history", chromedp.Click(chromedp.ID("history-btn")))
	tb.waitJS("the history answer is shown", fmt.Sprintf(`(() => {
		const notes = [...document.querySelectorAll("#messages .note")].filter(e => !e.innerText.includes("Loading"));
		return notes.length > %d && /persistence is off|from history|No stored history|No earlier|Could not/.test(document.getElementById("messages").innerText);
	})()`, n))
}

// waitHistoryMessage waits for a message marked as coming from history.
func (tb *tab) waitHistoryMessage(sender, text string) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf("history shows a message from %s %q", sender, text), fmt.Sprintf(
		`[...document.querySelectorAll("#messages .msg.history")].some(m => m.querySelector(".from").innerText === %s && m.querySelector(".content").innerText === %s)`,
		jsonString(sender), jsonString(text)))
}

// TestBrowserChatLoginRefused opens /chat on the jwt-mode gateway without a token: the
// page stays on the sign-in form and says why.
func TestBrowserChatLoginRefused(t *testing.T) {
	b := newBrowser(t)
	g := jwtGateway(t)
	user := uid("mallory")
	pg := b.newTab(user)
	pg.do("open /chat as "+user, chromedp.Navigate("http://"+g.Addr+"/chat#user="+user))
	pg.waitJS("the sign-in error is shown", `document.getElementById("login-error").classList.contains("show")`)
	if st := evalJS[string](pg, `document.body.dataset.state`); st != "login" {
		t.Errorf("page state %q after a refused login, want login", st)
	}
	msg := pg.text("#login-error")
	if !strings.Contains(msg, "10008") && !strings.Contains(msg, "Could not sign in") {
		t.Errorf("sign-in error %q: want the login failure code 10008 or the closed connection", msg)
	}
	pg.screenshot("chat-login-refused")
}

// TestBrowserChatKicked kicks a signed-in user with the HTTP API: the page says it was
// disconnected and why, and the SDK it is built on signs in again by itself after its
// backoff wait (the page's log keeps the trace; the disconnected state itself lasts only
// that wait, too short to observe reliably on a busy machine).
func TestBrowserChatKicked(t *testing.T) {
	b := newBrowser(t)
	g := mainGateway(t)
	user := uid("kicked")
	pg := chatTab(b, g, user)
	pg.openConversation(uid("peer"))
	r, err := g.api(t, epHTTP).Post("/api/v1/users/"+user+"/kick", map[string]string{"reason": "kicked by the browser test"})
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("kick %s: %v %v", user, r, err)
	}
	pg.waitJS("the page counts the disconnect", `document.body.dataset.disconnects === "1"`)
	pg.waitJS("signed in again", `document.body.dataset.state === "online"`)
	pg.waitText("#status", "online as "+user)
	for _, want := range []string{"connection closed", "kicked by the browser test", "reconnecting in", "signed in again as " + user} {
		pg.waitText("#log", want)
	}
	if evalJS[bool](pg, `document.getElementById("msg-input").disabled`) {
		t.Error("the composer stays disabled after the page signed in again")
	}
	pg.screenshot("chat-kicked-reconnected")
}
