package transport

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/codec/tcp"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
)

// The goodbye sends the notice to every connection, closes the idle ones once quiet (a
// WebSocket with close 1001 after the notice), waits for a handler still answering, and
// leaves a connection that keeps sending open until the grace ends.
func TestGoodbyeClosesWhenQuiet(t *testing.T) {
	release := make(chan struct{})
	h := newRecorder()
	h.onPkt = func(c *Conn, p packet.Packet) {
		if string(p.Body) == `{"slow":1}` {
			<-release
		}
		_ = c.Send(packet.Packet{Cmd: packet.CmdChatResp, Body: []byte(`{"answer":` + string(p.Body) + `}`)})
	}
	s := testServer(t, h, config.Limits{})
	idle := testConn(t, s, ProtoTCP)
	wsc := testConn(t, s, ProtoWS)
	upgrade(t, wsc)
	slow := testConn(t, s, ProtoTCP)
	busy := testConn(t, s, ProtoTLSTCP)
	slow.Inject(packet.Packet{Cmd: packet.CmdChatReq, Body: []byte(`{"slow":1}`)})

	stopBusy := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a client that never stops sending
		defer wg.Done()
		for {
			select {
			case <-stopBusy:
				return
			case <-time.After(5 * time.Millisecond):
				busy.Inject(chatPkt(1))
			}
		}
	}()
	defer func() { close(stopBusy); wg.Wait() }()

	notice := packet.ErrorPacket(packet.CmdError, packet.StatusServerBusy, "server shutting down")
	const quiet, grace = 250 * time.Millisecond, 3 * time.Second // quiet: many send intervals, even on a loaded machine
	parted := make(chan struct{})
	go func() {
		defer close(parted)
		if busy := s.partWith(context.Background(), Goodbye{Reason: "bye", Notice: notice, Quiet: quiet, Grace: grace}); busy != 1 {
			t.Errorf("the goodbye left %d connections open, want 1 (the one still sending)", busy)
		}
	}()

	waitFor(t, "the idle connections to close", func() bool { return idle.closeReason() != "" && wsc.closeReason() != "" })
	time.Sleep(4 * quiet)
	if r := slow.closeReason(); r != "" {
		t.Fatalf("a connection whose handler is still answering was closed: %s", r)
	}
	close(release)
	waitFor(t, "the slow connection to close once answered", func() bool { return slow.closeReason() != "" })
	select {
	case <-parted:
		t.Fatal("the goodbye ended before the grace while a connection kept sending")
	default:
	}
	<-parted
	if r := busy.closeReason(); r != "" {
		t.Fatalf("a connection that kept sending was closed during the grace: %s", r)
	}

	wantTCP := tcp.Frame(notice.Cmd, notice.Body)
	if got, closing := out(idle); !closing || !bytes.Equal(got, wantTCP) {
		t.Errorf("idle TCP connection: closing=%v output %q, want the notice %q then the close", closing, got, wantTCP)
	}
	got, closing := out(slow)
	if want := append(wantTCP, tcp.Frame(packet.CmdChatResp, []byte(`{"answer":{"slow":1}}`))...); !closing || !bytes.Equal(got, want) {
		t.Errorf("slow TCP connection: closing=%v output %q, want the notice, the answer, then the close", closing, got)
	}
	got, closing = out(wsc)
	r := bytes.NewReader(got)
	f, err := ws.ReadFrame(r)
	if err != nil || f.Header.OpCode != ws.OpText || !bytes.Equal(f.Payload, notice.Body) {
		t.Fatalf("WebSocket: first frame %v %q (%v), want the notice", f.Header.OpCode, f.Payload, err)
	}
	f, err = ws.ReadFrame(r)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("WebSocket: second frame %v (%v), want a close frame", f.Header.OpCode, err)
	}
	if code, reason := ws.ParseCloseFrameData(f.Payload); !closing || code != ws.StatusGoingAway || reason != "bye" {
		t.Errorf("WebSocket close %d %q (closing=%v), want 1001 \"bye\"", code, reason, closing)
	}
}

// Without a quiet period the goodbye closes nothing itself and sends no notice:
// ShutdownWith closes every connection at once.
func TestGoodbyeWithoutQuiet(t *testing.T) {
	s := testServer(t, newRecorder(), config.Limits{})
	c := testConn(t, s, ProtoTCP)
	if busy := s.partWith(context.Background(), Goodbye{Reason: "bye", Notice: chatPkt(1)}); busy != 0 {
		t.Fatalf("the goodbye reports %d connections busy, want 0 (it waits for none)", busy)
	}
	if got, closing := out(c); closing || len(got) != 0 {
		t.Fatalf("closing=%v output %q, want nothing yet", closing, got)
	}
}

// out takes what is queued to c and whether c is closing.
func out(c *Conn) ([]byte, bool) {
	buf, closing, _ := c.takeOut()
	return bytes.Clone(deref(buf)), closing
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
