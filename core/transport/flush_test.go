package transport

// These tests run a real Server (event loops, listener) and talk to it over loopback
// sockets with t-im TCP framing: the writing side of flush.go, deferred wakes included.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/timgw/timgw/core/codec/tcp"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
)

// loopServer starts a Server with a TCP port and its event loops.
func loopServer(t *testing.T, h Handler) (*Server, string) {
	t.Helper()
	s, err := New(Options{Handler: h, Logger: slog.New(slog.DiscardHandler),
		Limits: config.Limits{MaxFrameBytes: 1 << 20, OutboundQueueBytes: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen(ModeTCP, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, ln.Addr().String()
}

// readPackets reads n t-im TCP frames from nc.
func readPackets(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		var h [tcp.HeaderLen]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatalf("after %d packets: %v", len(got), err)
		}
		size := int(h[1])<<24 | int(h[2])<<16 | int(h[3])<<8 | int(h[4])
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("after %d packets: %v", len(got), err)
		}
		got = append(got, string(body))
	}
	return got
}

func dialTCP(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc, bufio.NewReader(nc)
}

// A batch of packets whose handling sends to the sender itself and to another
// connection gets everything through, in order: the answers held back during the batch
// (flHold) and the other connection's deliveries (deferred wakes) are written at its end.
func TestBatchSendsArriveInOrder(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]*Conn{}
	h := newRecorder()
	h.closed = make(chan string, 8)
	h.onPkt = func(c *Conn, p packet.Packet) {
		var who, to string
		var n int
		if _, err := fmt.Sscanf(string(p.Body), "%s %s %d", &who, &to, &n); err != nil {
			return
		}
		mu.Lock()
		conns[who] = c
		peer := conns[to]
		mu.Unlock()
		_ = c.Send(packet.Packet{Cmd: packet.CmdChatResp, Body: fmt.Appendf(nil, "ack %d", n)})
		if peer != nil {
			_ = peer.Send(packet.Packet{Cmd: packet.CmdChatReq, Body: fmt.Appendf(nil, "chat %d", n)})
		}
	}
	_, addr := loopServer(t, h)
	b, rb := dialTCP(t, addr)
	if _, err := b.Write(tcp.Frame(packet.CmdChatReq, []byte("b - 0"))); err != nil {
		t.Fatal(err)
	}
	readPackets(t, rb, 1) // b is known now
	a, ra := dialTCP(t, addr)
	const n = 200
	var batch []byte
	for i := 1; i <= n; i++ {
		batch = append(batch, tcp.Frame(packet.CmdChatReq, fmt.Appendf(nil, "a b %d", i))...)
	}
	if _, err := a.Write(batch); err != nil { // one write: the server reads them as batches
		t.Fatal(err)
	}
	acks, chats := readPackets(t, ra, n), readPackets(t, rb, n)
	for i := range n {
		if acks[i] != fmt.Sprintf("ack %d", i+1) || chats[i] != fmt.Sprintf("chat %d", i+1) {
			t.Fatalf("packet %d: ack %q, chat %q", i, acks[i], chats[i])
		}
	}
}

// A send that no batch makes (an API call, another node) reaches its connection while
// another connection's handler is stuck in a batch: the deferred wake is kicked by the
// timer, not by the batch's end.
func TestSendOutsideABatchIsNotHeldByAStuckOne(t *testing.T) {
	var mu sync.Mutex
	var target *Conn
	stuck, release := make(chan struct{}), make(chan struct{})
	h := newRecorder()
	h.closed = make(chan string, 8)
	h.onPkt = func(c *Conn, p packet.Packet) {
		switch string(p.Body) {
		case "hello":
			mu.Lock()
			target = c
			mu.Unlock()
			_ = c.Send(packet.Packet{Cmd: packet.CmdChatResp, Body: []byte("hi")})
		case "stuck":
			close(stuck)
			<-release
		}
	}
	_, addr := loopServer(t, h)
	defer close(release)
	b, rb := dialTCP(t, addr)
	if _, err := b.Write(tcp.Frame(packet.CmdChatReq, []byte("hello"))); err != nil {
		t.Fatal(err)
	}
	readPackets(t, rb, 1)
	a, _ := dialTCP(t, addr)
	// Two packets in one write: a batch of two, stuck at its first.
	if _, err := a.Write(append(tcp.Frame(packet.CmdChatReq, []byte("stuck")), tcp.Frame(packet.CmdChatReq, []byte("after"))...)); err != nil {
		t.Fatal(err)
	}
	<-stuck
	mu.Lock()
	c := target
	mu.Unlock()
	if err := c.Send(packet.Packet{Cmd: packet.CmdChatReq, Body: []byte("from outside")}); err != nil {
		t.Fatal(err)
	}
	if got := readPackets(t, rb, 1); got[0] != "from outside" {
		t.Fatalf("got %q", got[0])
	}
}
