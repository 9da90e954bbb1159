package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Plugin supervision tests: a plugin stopped with SIGSTOP (hung: alive, answering
// nothing) is found out by its pings, killed and restarted; requests get answers while
// storage hangs; a gateway shutting down never restarts its plugins.

// restartBound bounds how long a hung plugin may take to be replaced: ~3 s of unanswered
// pings, a kill and a start, on a busy machine with the race detector.
const restartBound = 15 * time.Second

// stopProcess sends SIGSTOP to pid and SIGCONT when t ends (a process that is still
// stopped then would hold up the gateway's shutdown).
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
}

// waitReplaced waits until g has a live child process matching substr other than old,
// and old is gone; it returns the new pid.
func waitReplaced(t *testing.T, g *gateway, substr string, old int) int {
	t.Helper()
	deadline := time.Now().Add(restartBound)
	for {
		pids := childPIDs(t, g, substr)
		if len(pids) == 1 && pids[0] != old {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d (%q) not replaced within %v: children %v\n%s", old, substr, restartBound, pids,
				excerpt(g.log.From(0), "hung", "restart"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until g's log from offset from holds every one of substrs on one line.
func waitLog(t *testing.T, g *gateway, from int, substrs ...string) {
	t.Helper()
	deadline := time.Now().Add(restartBound)
	for {
		for _, line := range strings.Split(g.log.From(from), "\n") {
			n := 0
			for _, s := range substrs {
				if strings.Contains(line, s) {
					n++
				}
			}
			if n == len(substrs) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v", substrs, restartBound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminSection is the configuration's admin section with the key newAdminClient sends.
var adminSection = fmt.Sprintf("admin:\n  keys: [%q]\n", reloadAdminKey)

// adminMetrics returns g's /metrics samples (its configuration has adminSection).
func adminMetrics(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	m, err := newAdminClient(t, g).metrics()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantMetrics checks samples of /metrics: want maps a series to a check.
func wantMetrics(t *testing.T, m map[string]float64, want map[string]func(float64) bool) {
	t.Helper()
	for series, ok := range want {
		v, found := m[series]
		if !found || !ok(v) {
			t.Errorf("metric %s = %v (present: %v)", series, v, found)
		}
	}
}

func atLeast(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
func equals(n float64) func(float64) bool  { return func(v float64) bool { return v == n } }

// TestStorageHungPluginRestarted stops the storage plugin with SIGSTOP while a user
// sends chats: the hang is logged with the plugin's pid, the process is killed and
// replaced within restartBound, chats are stored again afterwards, every acked chat
// reaches the receiver, and the refused ones (10030) are stored once when resent.
func TestStorageHungPluginRestarted(t *testing.T) {
	t.Parallel()
	g := startStorageGateway(t, "storage-hung", storageConfig(t, adminSection))
	alice, bob := uid("hung-alice"), uid("hung-bob")
	a := g.login(t, epTCP, alice)
	acked := map[string]bool{}
	var refused []string
	n := 0
	send := func() packet.Status {
		t.Helper()
		id := fmt.Sprintf("h%03d", n)
		n++
		r, err := a.Chat(packet.Chat{ID: packet.Str(id), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: id}, wait)
		if err != nil {
			t.Fatalf("chat %s: no answer: %v", id, err)
		}
		switch r.Code {
		case packet.StatusOK, packet.StatusOffline:
			acked[id] = true
		case packet.StatusStorageUnavailable:
			refused = append(refused, id)
		default:
			t.Fatalf("chat %s: %d %s", id, r.Code, r.Msg)
		}
		return r.Code
	}
	for range 5 {
		if code := send(); code != packet.StatusOffline {
			t.Fatalf("chat before the hang: %d", code)
		}
	}
	pid := pluginPid(t, g)
	logFrom := g.log.Len()
	stopProcess(t, pid)
	stopped := time.Now()
	// Chats go on while the plugin hangs; each is answered (10030 after write_timeout,
	// or stored once the plugin is back).
	for time.Since(stopped) < restartBound {
		if pids := childPIDs(t, g, "__plugin\x00storage"); len(pids) == 1 && pids[0] != pid {
			break
		}
		send()
	}
	newPid := waitReplaced(t, g, "__plugin\x00storage", pid)
	t.Logf("plugin %d stopped; replaced by %d after %v; %d refused while hung", pid, newPid, time.Since(stopped).Round(time.Millisecond), len(refused))
	log := g.log.From(logFrom)
	if !strings.Contains(log, `level=WARN msg="storage plugin hung`) || !strings.Contains(log, fmt.Sprintf("pid=%d", pid)) {
		t.Errorf("the hang was not logged as a warning with pid %d:\n%s", pid, excerpt(log, "hung"))
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the hung plugin %d still exists", pid)
	}
	// Stored again.
	for range 5 {
		if code := send(); code != packet.StatusOffline {
			t.Fatalf("chat after the restart answered %d, want 10001 (stored)", code)
		}
	}
	for _, id := range refused {
		r, err := a.Chat(packet.Chat{ID: packet.Str(id), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: id}, wait)
		mustCode(t, "resend "+id, r, err, packet.StatusOffline)
	}
	b := g.login(t, epWS, bob)
	seen := map[string]int{}
	for _, id := range drainOffline(t, b, bob) {
		seen[id]++
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acked chat %s reached bob %d times, want 1", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("bob got %d distinct chats, want %d", len(seen), n)
	}
	wantMetrics(t, adminMetrics(t, g), map[string]func(float64) bool{
		`timgw_plugin_hangs_total{kind="storage",name="bolt"}`:    equals(1),
		`timgw_plugin_restarts_total{kind="storage",name="bolt"}`: equals(1),
		`timgw_plugin_state{kind="storage",name="bolt"}`:          equals(1),
		`timgw_storage_append_seconds_count`:                      atLeast(float64(len(acked))),
		`timgw_storage_batch_size_count`:                          atLeast(1),
		`timgw_storage_errors_total{op="append"}`:                 equals(float64(len(refused))),
		`timgw_storage_errors_total{op="inbox"}`:                  equals(0),
	})
}

// TestCodecPluginHungRestarted stops a codec plugin with SIGSTOP: the hang is logged,
// the plugin killed and restarted, its clients closed, and new clients served.
func TestCodecPluginHungRestarted(t *testing.T) {
	t.Parallel()
	bin := lineBinary(t)
	g := startCodecGateway(t, "codec-hung", "open", adminSection, fmt.Sprintf("    - name: line\n      path: %q\n", bin))
	tcpUser := uid("tcp")
	tc := g.login(t, epTCP, tcpUser)
	lc := dialLine(t, g.Addr)
	lineUser := uid("line")
	lc.send("LOGIN %s", lineUser)
	lc.expect("OK 10007")
	lc.send("TO %s before the hang", tcpUser)
	lc.expect("OK 10000")
	checkChat(t, mustRecvChat(t, tc, tcpUser), lineUser, "before the hang", packet.ChatTypePrivate)

	pids := childPIDs(t, g.gateway, bin)
	if len(pids) != 1 {
		t.Fatalf("line plugin processes %v, want one", pids)
	}
	logFrom := g.log.Len()
	stopProcess(t, pids[0])
	newPid := waitReplaced(t, g.gateway, bin, pids[0])
	waitLog(t, g.gateway, logFrom, `msg="codec plugin started" plugin=line`, fmt.Sprintf("pid=%d", newPid))
	// The hung plugin's client was closed.
	_ = lc.nc.SetDeadline(time.Now().Add(restartBound))
	for lc.lines.Scan() {
		t.Logf("line client got %q before its close", lc.lines.Text())
	}
	if err := lc.lines.Err(); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the hung plugin's client was not closed: %v", err)
	}
	log := g.log.From(logFrom)
	if !strings.Contains(log, `level=WARN msg="codec plugin hung`) || !strings.Contains(log, fmt.Sprintf("pid=%d", pids[0])) ||
		!strings.Contains(log, "plugin=line") {
		t.Errorf("the hang was not logged as a warning with plugin line and pid %d:\n%s", pids[0], excerpt(log, "hung"))
	}
	// A new client is served by the new process.
	lc2 := dialLine(t, g.Addr)
	lc2.send("LOGIN %s", lineUser)
	lc2.expect("OK 10007")
	lc2.send("TO %s after the restart", tcpUser)
	lc2.expect("OK 10000")
	checkChat(t, mustRecvChat(t, tc, tcpUser), lineUser, "after the restart", packet.ChatTypePrivate)
	t.Logf("line plugin %d replaced by %d", pids[0], newPid)
	wantMetrics(t, adminMetrics(t, g.gateway), map[string]func(float64) bool{
		`timgw_plugin_hangs_total{kind="codec",name="line"}`:              equals(1),
		`timgw_plugin_restarts_total{kind="codec",name="line"}`:           equals(1),
		`timgw_plugin_state{kind="codec",name="line"}`:                    equals(1),
		`timgw_plugin_hangs_total{kind="codec",name="mqtt"}`:              equals(0),
		`timgw_plugin_state{kind="storage",name="bolt"}`:                  equals(1),
		`timgw_codec_plugin_packets_total{direction="in",plugin="line"}`:  atLeast(4),
		`timgw_codec_plugin_packets_total{direction="out",plugin="line"}`: atLeast(4),
	})
}

// TestRequestsAnsweredWhileStorageHangs stops the storage plugin with pings off (so it
// is not replaced): a user the gateway has never seen still logs in, and the chat and
// the history query queued behind the login on the same connection are answered with
// 10030 within write_timeout; once the plugin runs again, chats are stored.
func TestRequestsAnsweredWhileStorageHangs(t *testing.T) {
	t.Parallel()
	g := startStorageGateway(t, "storage-hang-login", storageConfig(t, "  write_timeout: 2s\n  ping_interval: 1h\n"))
	pid := pluginPid(t, g)
	stopProcess(t, pid)
	newcomer, bob := uid("hang-new"), uid("hang-bob")
	c := g.dial(t, epTCP)
	start := time.Now()
	// Pipelined: login, chat, history query, without waiting for answers.
	for _, req := range []struct {
		cmd  packet.Cmd
		body any
	}{
		{packet.CmdLoginReq, packet.Login{UserID: packet.Str(newcomer), Password: "x"}},
		{packet.CmdChatReq, packet.Chat{ID: "q1", To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "queued"}},
		{packet.CmdGetMessageReq, map[string]any{"type": 1, "fromUserId": bob}},
	} {
		if err := c.Send(req.cmd, req.body); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []struct {
		cmd  packet.Cmd
		code packet.Status
	}{
		{packet.CmdLoginResp, packet.StatusLoginOK},
		{packet.CmdChatResp, packet.StatusStorageUnavailable},
		{packet.CmdGetMessageResp, packet.StatusStorageUnavailable},
	} {
		if _, err := c.ExpectStatus(want.cmd, want.code, wait); err != nil {
			t.Fatalf("%s while storage hangs, %v after the login was sent: %v", want.cmd, time.Since(start).Round(time.Millisecond), err)
		}
		t.Logf("%s %d answered %v after the login was sent (write_timeout 2s each)", want.cmd, want.code, time.Since(start).Round(time.Millisecond))
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	r, err := c.Chat(packet.Chat{ID: "q1", To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "queued"}, wait)
	mustCode(t, "resend after the plugin resumed", r, err, packet.StatusOffline)
}

// TestShutdownNeverRestartsPlugins stops a gateway with SIGTERM several times, its plugin
// processes signalled too: at the same moment (a service manager signals every process
// of the service), or killed once the gateway is shutting down. The log never shows a
// plugin restarted or started after the signal, and the gateway exits cleanly.
func TestShutdownNeverRestartsPlugins(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, "codecs:\n  plugins:\n    - name: mqtt\n      builtin: codec-mqtt\n")
	for i := range 6 {
		g, err := startGateway(fmt.Sprintf("shutdown-%d", i), gwConfig{File: cfg})
		if err != nil {
			t.Fatal(err)
		}
		g.attach(t)
		kids := childPIDs(t, g, "__plugin")
		if len(kids) != 2 {
			_ = g.stop()
			t.Fatalf("plugin processes %v, want storage and codec", kids)
		}
		from := g.log.Len()
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		how := "SIGTERM to the gateway and its plugins at once"
		sig := syscall.SIGTERM
		if i%2 == 1 {
			how, sig = "SIGKILL to the plugins while the gateway shuts down", syscall.SIGKILL
			waitLog(t, g, from, `msg="shutting down"`)
		}
		for _, pid := range kids {
			_ = syscall.Kill(pid, sig)
		}
		if err := g.stop(); err != nil {
			t.Fatalf("run %d (%s): %v", i, how, err)
		}
		if g.waitErr != nil {
			t.Errorf("run %d (%s): gateway exited with %v", i, how, g.waitErr)
		}
		log := g.log.From(from)
		for _, bad := range []string{"restarting", "storage plugin ready", "codec plugin started", "plugin started"} {
			if strings.Contains(log, bad) {
				t.Fatalf("run %d (%s): after SIGTERM the log shows %q:\n%s", i, how, bad, excerpt(log, bad))
			}
		}
	}
}

// TestLockedBoltFailsFast starts a second gateway on the storage directory of a running
// one: it must exit at once, non-zero, naming the pid that holds the lock.
func TestLockedBoltFailsFast(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, "")
	first := startStorageGateway(t, "bolt-holder", cfg)
	start := time.Now()
	second, err := startGateway("bolt-second", gwConfig{File: cfg})
	took := time.Since(start)
	if err == nil {
		_ = second.stop()
		t.Fatal("a second gateway started on a locked bolt directory")
	}
	if took > wait {
		t.Errorf("the second gateway took %v to give up, want well under %v", took.Round(time.Millisecond), wait)
	}
	want := fmt.Sprintf("pid %d", first.cmd.Process.Pid)
	if !strings.Contains(err.Error(), "locked by") || !strings.Contains(err.Error(), want) {
		t.Errorf("the second gateway's failure does not name the holder (%s):\n%v", want, err)
	}
	t.Logf("second gateway gave up after %v", took.Round(time.Millisecond))
}

// pluginParts is the plugin part of /admin/status.
type pluginParts struct {
	Parts struct {
		Storage struct {
			Plugin string `json:"plugin"`
			State  string `json:"state"`
			PID    int    `json:"pid"`
			Hangs  int    `json:"hangs"`
		} `json:"storage"`
		Codecs []struct {
			Name  string `json:"name"`
			State string `json:"state"`
			PID   int    `json:"pid"`
		} `json:"codecs"`
	} `json:"parts"`
}

// codecState returns the state and pid /admin/status shows for codec plugin name.
func (p pluginParts) codecState(name string) (string, int) {
	for _, c := range p.Parts.Codecs {
		if c.Name == name {
			return c.State, c.PID
		}
	}
	return "absent", 0
}

// waitPlugins polls /admin/status until cond holds.
func waitPlugins(t *testing.T, a *adminClient, what string, cond func(pluginParts) bool) pluginParts {
	t.Helper()
	deadline := time.Now().Add(restartBound)
	for {
		var st pluginParts
		r, err := a.do(http.MethodGet, "/admin/status")
		if err == nil && r.Status == http.StatusOK {
			err = json.Unmarshal(r.Body, &st)
		}
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("/admin/status: want %s within %v; last %+v (%v)", what, restartBound, st.Parts, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAdminRestartPlugin drives POST /admin/plugins/NAME/restart: it revives a codec
// plugin marked failed, restarts the running storage plugin (chats are stored by the new
// process), and refuses unknown names and requests without the admin key.
func TestAdminRestartPlugin(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, adminSection+"codecs:\n  restart: {max_crashes: 1}\n  plugins:\n    - name: mqtt\n      builtin: codec-mqtt\n")
	g := startStorageGateway(t, "admin-restart", cfg)
	a := newAdminClient(t, g)
	post := func(name string) *timclient.APIResult {
		t.Helper()
		r, err := a.do(http.MethodPost, "/admin/plugins/"+name+"/restart")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// One crash marks mqtt failed (max_crashes: 1); the endpoint starts it again.
	st := waitPlugins(t, a, "mqtt running", func(p pluginParts) bool { s, _ := p.codecState("mqtt"); return s == "running" })
	_, mqttPid := st.codecState("mqtt")
	if err := syscall.Kill(mqttPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPlugins(t, a, "mqtt failed", func(p pluginParts) bool { s, _ := p.codecState("mqtt"); return s == "failed" })
	wantMetrics(t, adminMetrics(t, g), map[string]func(float64) bool{`timgw_plugin_state{kind="codec",name="mqtt"}`: equals(-1)})
	if r := post("mqtt"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"ok": true`) {
		t.Fatalf("restart of the failed mqtt plugin: %s", r)
	}
	waitPlugins(t, a, "mqtt running again", func(p pluginParts) bool {
		s, pid := p.codecState("mqtt")
		return s == "running" && pid != mqttPid && pid != 0
	})
	wantMetrics(t, adminMetrics(t, g), map[string]func(float64) bool{`timgw_plugin_state{kind="codec",name="mqtt"}`: equals(1)})

	// The running storage plugin is replaced; chats are stored by the new one.
	before := st.Parts.Storage.PID
	if st.Parts.Storage.Plugin != "bolt" || before == 0 {
		t.Fatalf("storage status %+v", st.Parts.Storage)
	}
	if r := post("storage"); r.Status != http.StatusOK {
		t.Fatalf("restart of storage: %s", r)
	}
	waitPlugins(t, a, "a new storage plugin running", func(p pluginParts) bool {
		return p.Parts.Storage.State == "running" && p.Parts.Storage.PID != before && p.Parts.Storage.PID != 0
	})
	c := g.login(t, epTCP, uid("restart-alice"))
	r, err := c.Chat(packet.Chat{ID: "after-restart", To: packet.Str(uid("restart-bob")), ChatType: packet.ChatTypePrivate, Content: "x"}, wait)
	mustCode(t, "chat after the storage restart", r, err, packet.StatusOffline)
	if r := post("bolt"); r.Status != http.StatusOK {
		t.Fatalf("restart of storage by its name: %s", r)
	}

	if r := post("nope"); r.Status != http.StatusNotFound {
		t.Errorf("restart of an unknown plugin: %s, want 404", r)
	}
	a.Key = "wrong"
	if r := post("storage"); r.Status != http.StatusUnauthorized {
		t.Errorf("restart without the admin key: %s, want 401", r)
	}
}

// TestStoredChatsHoldNoWorker runs a gateway with a pool of 2 workers and stops its
// storage plugin (pings off, so it is not replaced): 6 users each send a chat, which
// cannot be stored; a heartbeat from another connection is still answered, because a
// chat waiting for the store holds its connection, not a worker. Once the plugin runs
// again, every chat is acknowledged as stored (10001), none refused.
func TestStoredChatsHoldNoWorker(t *testing.T) {
	t.Parallel()
	g := startStorageGateway(t, "storage-hold", storageConfig(t, "  write_timeout: 20s\n  ping_interval: 1h\nruntime:\n  workers: 2\n"))
	bob := uid("hold-bob")
	senders := make([]*timclient.Conn, 6)
	for i := range senders {
		senders[i] = g.login(t, epTCP, uid(fmt.Sprintf("hold-s%d", i)))
	}
	other := g.login(t, epTCP, uid("hold-other"))
	pid := pluginPid(t, g)
	stopProcess(t, pid)
	for i, c := range senders {
		if err := c.Send(packet.CmdChatReq, packet.Chat{ID: packet.Str(fmt.Sprintf("hold%d", i)), To: packet.Str(bob),
			ChatType: packet.ChatTypePrivate, Content: "waits for the store"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Send(packet.CmdHeartbeatReq, map[string]any{"hbbyte": 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Expect(packet.CmdHeartbeatReq, wait); err != nil {
		t.Fatalf("heartbeat not answered while 6 chats wait for a hung store with 2 workers: %v", err)
	}
	resumed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for i, c := range senders {
		r, err := c.ExpectStatus(packet.CmdChatResp, packet.StatusOffline, 2*wait)
		if err != nil {
			t.Fatalf("chat of sender %d after the plugin resumed: %v", i, err)
		}
		if r.Code != packet.StatusOffline {
			t.Fatalf("chat of sender %d answered %d %s, want 10001 (stored)", i, r.Code, r.Msg)
		}
	}
	t.Logf("6 chats stored and acked %v after the plugin resumed", time.Since(resumed).Round(time.Millisecond))
}
