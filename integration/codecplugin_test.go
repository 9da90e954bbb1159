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
		if strings.Contains(string(cmdline), "__timgw-codec-plugin") && fields[0] != "Z" {
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
	g := startCodecGateway(t, "codec-crash", "open", "")
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
		m := mustRecvChat(t, wc, wsUser)
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

func TestCodecPluginThirdPartyExecutable(t *testing.T) {
	bin := filepath.Join(workDir, "codec-line")
	build := exec.Command("go", "build", "-o", bin, "./plugins/codec-line")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./plugins/codec-line: %v\n%s", err, out)
	}
	g := startCodecGateway(t, "codec-line", "open", fmt.Sprintf("    - name: line\n      path: %q\n", bin))
	tcpUser, lineUser := uid("tcp"), uid("line")
	tc := g.login(t, epTCP, tcpUser)

	nc, err := net.DialTimeout("tcp", g.Addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	lines := bufio.NewScanner(nc)
	expectLine := func(want string) {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("line client: connection ended (%v), want %q", lines.Err(), want)
		}
		if got := lines.Text(); got != want {
			t.Fatalf("line client got %q, want %q", got, want)
		}
	}
	fmt.Fprintf(nc, "LOGIN %s\n", lineUser)
	expectLine("OK 10007")
	fmt.Fprintf(nc, "TO %s hello from a line\n", tcpUser)
	expectLine("OK 10000")
	checkChat(t, mustRecvChat(t, tc, tcpUser), lineUser, "hello from a line", packet.ChatTypePrivate)
	accepted(t)(tc.ChatTo(lineUser, "hello line", wait))
	expectLine(fmt.Sprintf("MSG %s hello line", tcpUser))
	fmt.Fprintf(nc, "PING\n")
	expectLine("PONG")
}
