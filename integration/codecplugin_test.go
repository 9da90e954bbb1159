package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
)

// Codec plugin lifecycle tests: a plugin killed with SIGKILL mid-traffic (TCP and
// WebSocket users unaffected, MQTT clients back after the restart), and a third-party
// plugin executable named by path.

// codecPluginPIDs returns the pids of g's built-in codec plugin processes.
func codecPluginPIDs(t *testing.T, g *gateway) []int {
	t.Helper()
	return childPIDs(t, g, "__plugin\x00codec")
}

// childPIDs returns the pids of g's live child processes whose command line (arguments
// separated by NUL) contains substr.
func childPIDs(t *testing.T, g *gateway, substr string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(g.cmd.Process.Pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), substr) && fields[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitPluginPID waits for one live codec plugin process other than old.
func waitPluginPID(t *testing.T, g *gateway, old int) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		pids := codecPluginPIDs(t, g)
		if len(pids) == 1 && pids[0] != old {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("codec plugin processes %v, want one other than %d", pids, old)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCodecPluginCrashMidTraffic(t *testing.T) {
	needMosquitto(t)
	// Hooks off: the shipped moderation script rate-limits a user to 20 chats in 10 s.
	g := startCodecGateway(t, "codec-crash", "open", "hooks: {enabled: false}", "")
	pid := waitPluginPID(t, g.gateway, 0)
	tcpUser, wsUser, mq := uid("tcp"), uid("ws"), uid("mq")
	tc := g.login(t, epTCP, tcpUser)
	wc := g.login(t, epWS, wsUser)
	sub := startSub(t, g.Addr, mq, []string{"inbox/" + mq})
	<-sub.subacks

	// TCP → WebSocket traffic, with the plugin killed a quarter of the way through.
	const n = 200
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			r, err := tc.ChatTo(wsUser, fmt.Sprint("m", i), wait)
			if err == nil && r.Code != packet.StatusOK {
				err = fmt.Errorf("chat %d answered %d %s", i, r.Code, r.Msg)
			}
			if err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range n {
		m, err := wc.ExpectChat(wait)
		if err != nil {
			select {
			case serr := <-sent:
				t.Fatalf("%s, message %d: %v (TCP sender: %v)", wsUser, i, err, serr)
			default:
				t.Fatalf("%s, message %d: %v", wsUser, i, err)
			}
		}
		if m.Content != fmt.Sprint("m", i) || string(m.From) != tcpUser {
			t.Fatalf("message %d: %+v", i, m)
		}
		if i == n/4 {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("TCP sender: %v", err)
	}
	mustSync(t, tc, tcpUser)
	mustSync(t, wc, wsUser)

	// The plugin is restarted; its crash was logged with the reason its clients were
	// closed.
	newPID := waitPluginPID(t, g.gateway, pid)
	log := g.log.From(0)
	for _, want := range []string{"codec plugin crashed", "codec plugin mqtt crashed", "codec plugin restarting"} {
		if !strings.Contains(log, want) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
	// mosquitto_sub reconnects and subscribes again by itself; mosquitto_pub works.
	select {
	case <-sub.subacks:
	case <-time.After(wait):
		t.Fatalf("mosquitto_sub did not resubscribe after the restart (plugin %d → %d):\n%s", pid, newPID, sub.out.From(0))
	}
	mustPub(t, g.Addr, mq, "chat/user/"+tcpUser, "after the restart", 1)
	checkChat(t, mustRecvChat(t, tc, tcpUser), mq, "after the restart", packet.ChatTypePrivate)
	accepted(t)(wc.ChatTo(mq, "welcome back", wait))
	c := sub.expectChat(t, "inbox/"+mq)
	checkChat(t, &c, wsUser, "welcome back", packet.ChatTypePrivate)
}

var (
	lineBinOnce sync.Once
	lineBin     string
	lineBinErr  error
)

// lineBinary builds the template plugin plugins/codec-line once.
func lineBinary(t *testing.T) string {
	t.Helper()
	lineBinOnce.Do(func() {
		lineBin = filepath.Join(workDir, "codec-line")
		build := exec.Command("go", "build", "-o", lineBin, "./plugins/codec-line")
		build.Dir = moduleRoot
		if out, err := build.CombinedOutput(); err != nil {
			lineBinErr = fmt.Errorf("go build ./plugins/codec-line: %v\n%s", err, out)
		}
	})
	if lineBinErr != nil {
		t.Fatal(lineBinErr)
	}
	return lineBin
}

// lineClient is a client of the line protocol.
type lineClient struct {
	t     *testing.T
	nc    net.Conn
	lines *bufio.Scanner
}

func dialLine(t *testing.T, addr string) *lineClient {
	t.Helper()
	nc := dialRaw(t, addr)
	_ = nc.SetDeadline(time.Now().Add(wait))
	return &lineClient{t: t, nc: nc, lines: bufio.NewScanner(nc)}
}

func (c *lineClient) send(format string, args ...any) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, format+"\n", args...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *lineClient) expect(want string) {
	c.t.Helper()
	if !c.lines.Scan() {
		c.t.Fatalf("line client: connection ended (%v), want %q", c.lines.Err(), want)
	}
	if got := c.lines.Text(); got != want {
		c.t.Fatalf("line client got %q, want %q", got, want)
	}
}

func TestCodecPluginThirdPartyExecutable(t *testing.T) { lineChat(t, "codec-line", lineBinary(t)) }

// lineChat starts a gateway with the line plugin executable bin and exchanges chats
// between a line client and a t-im TCP client.
func lineChat(t *testing.T, name, bin string) {
	t.Helper()
	g := startCodecGateway(t, name, "open", "", fmt.Sprintf("    - name: line\n      path: %q\n", bin))
	tcpUser, lineUser := uid("tcp"), uid("line")
	tc := g.login(t, epTCP, tcpUser)

	lc := dialLine(t, g.Addr)
	expectLine, nc := lc.expect, lc.nc
	lc.send("LOGIN %s", lineUser)
	expectLine("OK 10007")
	fmt.Fprintf(nc, "TO %s hello from a line\n", tcpUser)
	expectLine("OK 10000")
	checkChat(t, mustRecvChat(t, tc, tcpUser), lineUser, "hello from a line", packet.ChatTypePrivate)
	accepted(t)(tc.ChatTo(lineUser, "hello line", wait))
	expectLine(fmt.Sprintf("MSG %s hello line", tcpUser))
	fmt.Fprintf(nc, "PING\n")
	expectLine("PONG")
}

// TestCodecPluginGoodbye kills the line plugin with SIGKILL: its client reads the
// goodbye the plugin declared at its handshake, then EOF.
func TestCodecPluginGoodbye(t *testing.T) {
	bin := lineBinary(t)
	g := startCodecGateway(t, "codec-goodbye", "open", "", fmt.Sprintf("    - name: line\n      path: %q\n", bin))
	lc := dialLine(t, g.Addr)
	lc.send("LOGIN %s", uid("line"))
	lc.expect("OK 10007")
	pids := childPIDs(t, g.gateway, bin)
	if len(pids) != 1 {
		t.Fatalf("line plugin processes %v, want one", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	lc.expect("ERR plugin restarting")
	if lc.lines.Scan() {
		t.Fatalf("after the goodbye: %q, want EOF", lc.lines.Text())
	}
	if err := lc.lines.Err(); err != nil {
		t.Fatalf("after the goodbye: %v, want EOF", err)
	}
}

func TestCodecPluginAddedByReload(t *testing.T) {
	bin := lineBinary(t)
	g := startCodecGateway(t, "codec-reload", "open", "", "")
	lineAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	path := g.cmd.Args[2] // -config <path>
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("    - name: line\n      path: %q\n      shared_port: false\n      listen: [%q]\n", bin, lineAddr)...)
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = g.cmd.Process.Signal(syscall.SIGHUP) // the file watch may have seen it already
	if err := waitDial(lineAddr); err != nil {
		t.Fatalf("the line plugin's port %s after the reload: %v\n%s", lineAddr, err, g.log.From(0))
	}
	tcpUser, lineUser := uid("tcp"), uid("line")
	tc := g.login(t, epTCP, tcpUser)
	lc := dialLine(t, lineAddr)
	lc.send("LOGIN %s", lineUser)
	lc.expect("OK 10007")
	accepted(t)(tc.ChatTo(lineUser, "welcome, new protocol", wait))
	lc.expect(fmt.Sprintf("MSG %s welcome, new protocol", tcpUser))
	// Not on the shared port (shared_port: false): a line client there is not recognised.
	other := dialLine(t, g.Addr)
	other.send("LOGIN %s", uid("line"))
	if other.lines.Scan() {
		t.Fatalf("the shared port answered a line client: %q", other.lines.Text())
	}
}
