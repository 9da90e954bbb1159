package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// The graceful shutdown on SIGTERM (README "Running in production", docs/protocol.md
// "Shutdown"): the drain, the goodbye, chats in flight, the health sub-command.

// TestShutdownDrain sends one SIGTERM to a gateway with shutdown.drain 4s: /health
// answers 503 "draining" at once, and while it does, a chat between two clients
// connected before the signal is delivered, and new clients connect, log in and chat;
// the process exits with status 0, not before the drain is over.
func TestShutdownDrain(t *testing.T) {
	t.Parallel()
	const drain = 4 * time.Second
	g := startTestGateway(t, "drain", gwConfig{Drain: drain})
	aliceID, bobID, lateID := uid("alice"), uid("bob"), uid("late")
	alice := g.login(t, epTCP, aliceID)
	bob := g.login(t, epWS, bobID)
	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	api.Client.Timeout = 2 * time.Second
	defer api.CloseIdle()

	sent := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- g.terminate() }()
	eventually(t, "/health answers 503 draining after SIGTERM", func() error {
		r, err := api.Get("/health")
		if err != nil {
			return err
		}
		if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), `"draining"`) {
			return fmt.Errorf("GET /health: %s", r)
		}
		return nil
	})

	// Clients connected before the signal still chat.
	r, err := alice.ChatTo(bobID, "during the drain", wait)
	mustAccepted(t, r, err)
	if m := mustRecvChat(t, bob, "bob"); m.Content != "during the drain" {
		t.Fatalf("bob got %q", m.Content)
	}
	// New clients connect, log in and chat, over TCP and WebSocket.
	late := g.login(t, epWS, lateID)
	carol := g.login(t, epTCP, uid("carol"))
	r, err = carol.ChatTo(lateID, "new client during the drain", wait)
	mustAccepted(t, r, err)
	if m := mustRecvChat(t, late, "late"); m.Content != "new client during the drain" {
		t.Fatalf("late got %q", m.Content)
	}
	// All of that happened during the drain: /health still says so, the process runs.
	if r, err := api.Get("/health"); err != nil || r.Status != http.StatusServiceUnavailable {
		t.Fatalf("GET /health after the chats: %v %v, want 503 (still draining)", r, err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("the gateway stopped during the drain: %v", err)
	default:
	}

	awaitExit(t, g, stopped)
	took := time.Since(sent)
	if took < drain {
		t.Errorf("the gateway exited %v after SIGTERM, before the %v drain was over", took.Round(time.Millisecond), drain)
	}
	t.Logf("exit %d ms after SIGTERM", took.Milliseconds())
}

// awaitExit waits for the stop that terminate started (stopped is its result) and
// fails t unless it went well and the process exited with status 0.
func awaitExit(t *testing.T, g *gateway, stopped <-chan error) {
	t.Helper()
	if err := <-stopped; err != nil {
		t.Error(err)
	}
	if g.waitErr != nil {
		t.Errorf("exit status after SIGTERM: %v, want 0", g.waitErr)
	}
}

// noticeCode returns the code of p when it is the shutdown notice (cmd 0), else 0.
func noticeCode(t *testing.T, p packet.Packet) packet.Status {
	t.Helper()
	if p.Cmd != packet.CmdError {
		return 0
	}
	r, err := timclient.DecodeResponse(p)
	if err != nil {
		t.Fatalf("cmd 0 body %s: %v", p.Body, err)
	}
	return r.Code
}

// TestShutdownGoodbye stops a gateway with clients of every built-in protocol connected:
// t-im TCP clients (plain and TLS) read the notice (cmd 0, code 10034) and then the end
// of the stream; WebSocket clients (plain and TLS) read the notice and then a close
// frame 1001 (going away) with a reason.
func TestShutdownGoodbye(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "goodbye", gwConfig{TLS: true})
	clients := map[endpoint]*timclient.Conn{}
	for _, ep := range []endpoint{epTCP, epTLS, epWS, epWSS} {
		clients[ep] = g.login(t, ep, uid("bye-"+string(ep)))
	}
	stopped := make(chan error, 1)
	go func() { stopped <- g.terminate() }()
	for ep, c := range clients {
		got, err := c.ExpectClosed(wait)
		if err != nil {
			t.Errorf("%s client: %v", ep, err)
			continue
		}
		if len(got) != 1 || noticeCode(t, got[0]) != packet.StatusServerBusy {
			t.Errorf("%s client received %s before the close, want the notice alone (cmd 0, code 10034)", ep, timclient.Describe(got))
		}
		var ce *timclient.CloseError
		switch {
		case ep == epWS || ep == epWSS:
			if !errors.As(c.Err(), &ce) || ce.Code != 1001 || ce.Reason == "" {
				t.Errorf("%s client closed with %v, want a close frame 1001 (going away) with a reason", ep, c.Err())
			}
		case ep == epTCP && c.Err() != timclient.ErrClosed:
			t.Errorf("%s client closed with %v, want the end of the stream", ep, c.Err())
		}
	}
	awaitExit(t, g, stopped)
}

// TestShutdownInFlightChats has clients send chats to one another as fast as a window
// of 32 unanswered chats allows, with storage on (bolt), and stops the gateway with
// SIGTERM mid-stream: every chat a client wrote gets its cmd 12 answer (10000 or 10001,
// or 10034 after the shutdown began) before the server closes the connection. A client
// stops writing once it reads the notice; a write that fails (the socket closed) is
// not counted as sent.
func TestShutdownInFlightChats(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "inflight", gwConfig{NoHooks: true})
	const n, window = 4, 32
	type stream struct {
		user     string
		c        *timclient.Conn
		mu       sync.Mutex
		sent     []string
		answered map[string]packet.Status
		notice   bool
		failed   error // the write that failed, if one did
	}
	streams := make([]*stream, n)
	for i := range streams {
		u := uid("flight")
		streams[i] = &stream{user: u, c: g.login(t, epTCP, u), answered: map[string]packet.Status{}}
	}
	var total sync.WaitGroup
	started := make(chan struct{}, n)
	for i, s := range streams {
		peer := streams[i^1].user
		slots := make(chan struct{}, window)
		readDone := make(chan struct{})
		total.Add(2)
		go func() { // writer
			defer total.Done()
			for k := 0; ; k++ {
				select {
				case slots <- struct{}{}:
				case <-readDone:
					return
				}
				s.mu.Lock()
				stop := s.notice
				s.mu.Unlock()
				if stop {
					return
				}
				id := fmt.Sprintf("%s-%d", s.user, k)
				err := s.c.Send(packet.CmdChatReq, packet.Chat{ID: packet.Str(id), To: packet.Str(peer), ChatType: 2, Content: "in flight " + id})
				s.mu.Lock()
				if err != nil {
					s.failed = err
				} else {
					s.sent = append(s.sent, id)
				}
				s.mu.Unlock()
				if err != nil {
					return
				}
				if k == 100 {
					started <- struct{}{}
				}
			}
		}()
		go func() { // reader: until the server closes the connection
			defer total.Done()
			defer close(readDone)
			for {
				p, err := s.c.Recv(30 * time.Second)
				if err != nil {
					if !errors.Is(err, timclient.ErrClosed) {
						t.Errorf("%s: reading: %v", s.user, err)
					}
					return
				}
				switch p.Cmd {
				case packet.CmdError:
					if code := noticeCode(t, p); code == packet.StatusServerBusy {
						s.mu.Lock()
						s.notice = true
						s.mu.Unlock()
					}
				case packet.CmdChatResp:
					r, err := timclient.DecodeResponse(p)
					var d struct {
						ID string `json:"id"`
					}
					if err == nil {
						err = json.Unmarshal(r.Data, &d)
					}
					if err != nil || d.ID == "" {
						t.Errorf("%s: cmd 12 %s names no chat id (%v)", s.user, p.Body, err)
						continue
					}
					s.mu.Lock()
					s.answered[d.ID] = r.Code
					s.mu.Unlock()
					select {
					case <-slots:
					default:
					}
				}
			}
		}()
	}
	for range n {
		select {
		case <-started:
		case <-time.After(60 * time.Second):
			t.Fatal("the clients did not get 100 chats out within 60 s")
		}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- g.terminate() }()
	total.Wait()
	awaitExit(t, g, stopped)
	codes := map[packet.Status]int{}
	for _, s := range streams {
		s.mu.Lock()
		missing := 0
		for _, id := range s.sent {
			code, ok := s.answered[id]
			if !ok {
				if missing++; missing <= 3 {
					t.Errorf("%s: chat %s was written but got no answer before the close", s.user, id)
				}
				continue
			}
			codes[code]++
			if code != packet.StatusOK && code != packet.StatusOffline && code != packet.StatusServerBusy {
				t.Errorf("%s: chat %s answered %d, want 10000, 10001 or 10034", s.user, id, code)
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d chats written got no answer (notice seen: %v, failed write: %v)", s.user, missing, len(s.sent), s.notice, s.failed)
		}
		if !s.notice {
			t.Errorf("%s: the connection closed without the shutdown notice", s.user)
		}
		s.mu.Unlock()
	}
	if codes[packet.StatusOK]+codes[packet.StatusOffline] == 0 {
		t.Error("no chat was accepted")
	}
	t.Logf("answers by code: %v", codes)
}

// runBinary runs the gateway binary with args (not as a gateway) and returns its exit
// code, stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = gatewayEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("timgw %s still running after 30 s; stderr: %s", strings.Join(args, " "), stderr.String())
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("timgw %s: %v", strings.Join(args, " "), err)
	}
	return 0, stdout.String(), stderr.String()
}

// TestHealthCommand runs `timgw health ADDR` against a healthy gateway (exit 0), a port
// nobody listens on (1), the same gateway draining after SIGTERM (1), and with bad
// arguments (2).
func TestHealthCommand(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "health-cmd", gwConfig{Drain: 30 * time.Second})
	if code, out, errOut := runBinary(t, "health", g.Addr); code != 0 || !strings.Contains(out, "200") {
		t.Errorf("timgw health %s: exit %d, stdout %q, stderr %q; want 0 and the 200", g.Addr, code, out, errOut)
	}
	port := g.Addr[strings.LastIndex(g.Addr, ":"):]
	if code, _, errOut := runBinary(t, "health", "http://127.0.0.1"+port+"/"); code != 0 {
		t.Errorf("timgw health with a URL: exit %d, stderr %q; want 0", code, errOut)
	}
	closed, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runBinary(t, "health", "-timeout", "2s", closed); code != 1 || !strings.Contains(errOut, "unhealthy") {
		t.Errorf("timgw health on a closed port: exit %d, stderr %q; want 1, unhealthy", code, errOut)
	}
	if code, _, errOut := runBinary(t, "health", "a:1", "b:2"); code != 2 || !strings.Contains(errOut, "usage") {
		t.Errorf("timgw health with two addresses: exit %d, stderr %q; want 2 and the usage", code, errOut)
	}
	if code, _, errOut := runBinary(t, "health", "8888"); code != 2 {
		t.Errorf("timgw health 8888: exit %d, stderr %q; want 2 (not an address)", code, errOut)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- g.terminate() }()
	eventually(t, "timgw health fails once the gateway drains", func() error {
		code, _, errOut := runBinary(t, "health", g.Addr)
		if code != 1 || !strings.Contains(errOut, "draining") {
			return fmt.Errorf("exit %d, stderr %q; want 1 and draining", code, errOut)
		}
		return nil
	})
	// A second SIGTERM ends the 30 s drain at once.
	second := time.Now()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	awaitExit(t, g, stopped)
	if took := time.Since(second); took > 20*time.Second {
		t.Errorf("the gateway exited %v after a second SIGTERM, want the 30 s drain cut short", took.Round(time.Millisecond))
	}
	if !strings.Contains(g.log.From(0), "drain cut short") {
		t.Error("the gateway log does not say the drain was cut short")
	}
}

// TestVersionFlag runs `timgw -version`: exit 0 and one line, "timgw VERSION (GO
// OS/ARCH)".
func TestVersionFlag(t *testing.T) {
	t.Parallel()
	code, out, errOut := runBinary(t, "-version")
	if code != 0 {
		t.Fatalf("timgw -version: exit %d, stderr %q", code, errOut)
	}
	if !regexp.MustCompile(`^timgw \S+ \(go1\.\d+\S* \w+/\w+\)\n$`).MatchString(out) {
		t.Errorf("timgw -version printed %q, want \"timgw VERSION (goX.Y OS/ARCH)\"", out)
	}
}
