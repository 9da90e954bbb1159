package transport

// These tests drive a Conn in process, with no event loop and no socket: the test plays
// the writer (setWaker, takeOut) the way loop.go and stream.go do, and a recording
// Handler stands for the command layer. serveStream runs over net.Pipe.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/ants/v2"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/codec/tcp"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
)

// recorder is a Handler that records its calls in order and notes any that overlapped.
type recorder struct {
	mu      sync.Mutex
	calls   []string
	busy    atomic.Int32
	overlap atomic.Bool
	closed  chan string // the reason of Closed
	onPkt   func(c *Conn, p packet.Packet)
	opened  chan struct{} // Opened waits for it to be closed, when not nil
	inOpen  chan struct{} // closed when Opened starts, when not nil
}

var _ Handler = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{closed: make(chan string, 1)} }

func (r *recorder) enter(call string) {
	if r.busy.Add(1) != 1 {
		r.overlap.Store(true)
	}
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
}

func (r *recorder) leave() { r.busy.Add(-1) }

func (r *recorder) Opened(*Conn) {
	r.enter("open")
	defer r.leave()
	if r.inOpen != nil {
		close(r.inOpen)
	}
	if r.opened != nil {
		<-r.opened
	}
}

func (r *recorder) Packet(c *Conn, p packet.Packet) {
	r.enter(string(p.Body))
	defer r.leave()
	if r.onPkt != nil {
		r.onPkt(c, p)
	}
}

func (r *recorder) Closed(_ *Conn, reason string) {
	r.enter("closed")
	r.leave()
	r.closed <- reason
}

func (r *recorder) waitClosed(t *testing.T) string {
	t.Helper()
	select {
	case reason := <-r.closed:
		return reason
	case <-time.After(10 * time.Second):
		t.Fatal("handler's Closed was not called")
		return ""
	}
}

// undo forgets the last call recorded (a packet handed again later).
func (r *recorder) undo() {
	r.mu.Lock()
	r.calls = r.calls[:len(r.calls)-1]
	r.mu.Unlock()
}

func (r *recorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// testServer is a Server with a worker pool and limits but no event loop or listener.
func testServer(t *testing.T, h Handler, lim config.Limits) *Server {
	t.Helper()
	pool, err := ants.NewPool(8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Release)
	if lim.MaxFrameBytes == 0 {
		lim.MaxFrameBytes = 1 << 20
	}
	if lim.OutboundQueueBytes == 0 {
		lim.OutboundQueueBytes = 1 << 20
	}
	s := &Server{handler: h, log: slog.New(slog.DiscardHandler), pool: pool, closed: make(chan struct{})}
	s.lim.Store(&lim)
	return s
}

func testConn(t *testing.T, s *Server, proto string) *Conn {
	t.Helper()
	c, refused := s.newConn(proto, nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000})
	if c == nil {
		t.Fatalf("newConn refused the connection: %s", refused)
	}
	return c
}

// upgrade feeds c's WebSocket codec an upgrade request, as the reader does, and takes
// the upgrade response off the output queue.
func upgrade(t *testing.T, c *Conn) {
	t.Helper()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	var d codec.Decoded
	if _, err := c.codec.Decode([]byte(req), &d); err != nil {
		t.Fatal(err)
	}
	c.reply(d.Reply)
	buf, _, _ := c.takeOut()
	if !bytes.HasPrefix(deref(buf), []byte("HTTP/1.1 101")) {
		t.Fatalf("upgrade answered %q", deref(buf))
	}
}

// countWaker counts the wakes a writer gets.
type countWaker struct{ n atomic.Int32 }

func (w *countWaker) wake() { w.n.Add(1) }

func chatPkt(i int) packet.Packet {
	return packet.Packet{Cmd: packet.CmdChatReq, Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}
}

// Packets sent while the writer has not run are coalesced into one buffer, in order,
// with one wake; the next send after the writer took them wakes it again.
func TestSendCoalescesUntilTheWriterRuns(t *testing.T) {
	s := testServer(t, newRecorder(), config.Limits{})
	c := testConn(t, s, ProtoTCP)
	w := &countWaker{}
	if c.setWaker(w) {
		t.Fatal("setWaker reports output pending on a new connection")
	}
	var want []byte
	for i := range 5 {
		if err := c.Send(chatPkt(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, tcp.Frame(packet.CmdChatReq, chatPkt(i).Body)...)
	}
	if n := w.n.Load(); n != 1 {
		t.Fatalf("%d wakes for 5 sends before the writer ran, want 1", n)
	}
	buf, closing, abort := c.takeOut()
	if buf == nil || !bytes.Equal(*buf, want) {
		t.Fatalf("writer got %q, want the 5 frames in order %q", deref(buf), want)
	}
	if closing || abort {
		t.Fatalf("closing=%v abort=%v on an open connection", closing, abort)
	}
	c.giveBack(buf)
	if buf, _, _ := c.takeOut(); buf != nil {
		t.Fatalf("a second takeOut got %q, want nothing", *buf)
	}

	if err := c.Send(chatPkt(5)); err != nil {
		t.Fatal(err)
	}
	if n := w.n.Load(); n != 2 {
		t.Fatalf("%d wakes after the writer emptied the queue and one more send, want 2", n)
	}
	buf, _, _ = c.takeOut()
	if want := tcp.Frame(packet.CmdChatReq, chatPkt(5).Body); buf == nil || !bytes.Equal(*buf, want) {
		t.Fatalf("writer got %q, want %q", deref(buf), want)
	}
}

func deref(b *[]byte) []byte {
	if b == nil {
		return nil
	}
	return *b
}

// Output queued before a writer is attached is reported by setWaker.
func TestSetWakerReportsQueuedOutput(t *testing.T) {
	s := testServer(t, newRecorder(), config.Limits{})
	c := testConn(t, s, ProtoTCP)
	if err := c.Send(chatPkt(1)); err != nil {
		t.Fatal(err)
	}
	w := &countWaker{}
	if !c.setWaker(w) {
		t.Fatal("setWaker does not report the packet queued before it")
	}
	if err := c.Send(chatPkt(2)); err != nil {
		t.Fatal(err)
	}
	if n := w.n.Load(); n != 0 {
		t.Fatalf("%d wakes while a wake was already due, want 0", n)
	}
}

// The outbound queue holds what fits under limits.outbound_queue_bytes (each packet
// counted as its body plus 16 bytes of headroom); the send that would pass the limit
// fails with ErrSlowConsumer, drops what was queued, wakes the writer and tells it to
// close without writing; later sends fail with ErrClosed.
func TestOutboundQueueBound(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100)
	frame := len(tcp.Frame(packet.CmdChatReq, body))
	for _, limit := range []int{120, 500, 1000, 4096} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			s := testServer(t, newRecorder(), config.Limits{OutboundQueueBytes: limit})
			c := testConn(t, s, ProtoTCP)
			w := &countWaker{}
			c.setWaker(w)
			fits := 0
			for fits*frame+len(body)+16 <= limit {
				fits++
			}
			for i := range fits {
				if err := c.Send(packet.Packet{Cmd: packet.CmdChatReq, Body: body}); err != nil {
					t.Fatalf("send %d of %d that fit under %d bytes: %v", i+1, fits, limit, err)
				}
			}
			wakes := w.n.Load()
			if err := c.Send(packet.Packet{Cmd: packet.CmdChatReq, Body: body}); !errors.Is(err, ErrSlowConsumer) {
				t.Fatalf("send past the limit (%d queued): %v, want ErrSlowConsumer", fits*frame, err)
			}
			if w.n.Load() == wakes {
				t.Fatal("the writer was not woken to drop the slow consumer")
			}
			if err := c.Send(chatPkt(0)); !errors.Is(err, ErrClosed) {
				t.Fatalf("send after the overflow: %v, want ErrClosed", err)
			}
			buf, closing, abort := c.takeOut()
			if buf != nil || !closing || !abort {
				t.Fatalf("writer got buf=%q closing=%v abort=%v, want nothing to write and an abort", deref(buf), closing, abort)
			}
			if r := c.closeReason(); !strings.Contains(r, "slow consumer") {
				t.Fatalf("close reason %q, want a slow consumer", r)
			}
		})
	}
}

// Close lets the writer flush what was queued, then the protocol's goodbye (a WebSocket
// close frame), then close; nothing can be queued behind the goodbye.
func TestCloseFlushesQueuedThenGoodbye(t *testing.T) {
	s := testServer(t, newRecorder(), config.Limits{})
	c := testConn(t, s, ProtoWS)
	w := &countWaker{}
	c.setWaker(w)
	upgrade(t, c)
	for i := range 2 {
		if err := c.Send(chatPkt(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close("kicked")
	c.Close("second close is ignored")
	if err := c.Send(chatPkt(9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after Close: %v, want ErrClosed", err)
	}
	buf, closing, abort := c.takeOut()
	if !closing || abort {
		t.Fatalf("closing=%v abort=%v, want a close after writing", closing, abort)
	}
	r := bytes.NewReader(deref(buf))
	for _, want := range []string{`{"n":0}`, `{"n":1}`} {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.OpCode != ws.OpText || !bytes.Contains(f.Payload, []byte(want)) {
			t.Fatalf("frame %v %q, want a text frame with %s", f.Header.OpCode, f.Payload, want)
		}
	}
	f, err := ws.ReadFrame(r)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.OpCode != ws.OpClose {
		t.Fatalf("last frame has opcode %v, want a close frame", f.Header.OpCode)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the close frame", r.Len())
	}
	if got := c.closeReason(); got != "kicked" {
		t.Fatalf("close reason %q, want the first Close's", got)
	}
}

// The handler sees Opened, every packet in the order it arrived, then Closed, one call
// at a time, while packets keep arriving during the drain; nothing after Closed.
func TestInboxDrainOrder(t *testing.T) {
	h := newRecorder()
	h.opened = make(chan struct{})
	s := testServer(t, h, config.Limits{})
	c := testConn(t, s, ProtoTCP)
	const n = 2000
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf(`{"n":%d}`, i))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader: packets one or a few at a time
		defer wg.Done()
		for i := 0; i < n; {
			k := min(1+i%3, n-i)
			ps := make([]packet.Packet, k)
			for j := range ps {
				ps[j] = chatPkt(i + j)
			}
			c.Inject(ps...)
			i += k
			if i == n/2 {
				close(h.opened) // let the handler start while the rest arrive
			}
		}
	}()
	wg.Wait()
	s.finished(c, "peer closed the connection")
	c.Inject(chatPkt(n)) // after the close: dropped
	if reason := h.waitClosed(t); reason != "peer closed the connection" {
		t.Fatalf("Closed reason %q", reason)
	}
	got := h.recorded()
	want = append(append([]string{"open"}, want...), "closed")
	if len(got) != len(want) {
		t.Fatalf("handler got %d calls, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("call %d is %s, want %s", i, got[i], want[i])
		}
	}
	if h.overlap.Load() {
		t.Fatal("handler calls for one connection overlapped")
	}
	if s.Connections() != 0 {
		t.Fatalf("%d connections listed after finished", s.Connections())
	}
}

// More than maxInbox packets waiting for a busy handler close the connection.
func TestInboxOverflowCloses(t *testing.T) {
	h := newRecorder()
	h.opened, h.inOpen = make(chan struct{}), make(chan struct{})
	s := testServer(t, h, config.Limits{})
	c := testConn(t, s, ProtoTCP)
	<-h.inOpen // the worker has taken Opened out of the inbox
	defer close(h.opened)
	ps := make([]packet.Packet, maxInbox)
	for i := range ps {
		ps[i] = chatPkt(i)
	}
	c.Inject(ps...)
	if r := c.closeReason(); r != "" {
		t.Fatalf("closed at %d packets waiting: %s", maxInbox, r)
	}
	c.Inject(chatPkt(maxInbox))
	if r := c.closeReason(); !strings.Contains(r, "inbound queue overflow") {
		t.Fatalf("close reason %q, want an inbound queue overflow", r)
	}
}

// A stream connection whose peer stops reading is dropped as a slow consumer: its writer
// closes the connection without writing what was queued behind the overflow, and the
// handler's Closed gets the slow-consumer reason.
func TestStreamSlowConsumerDisconnect(t *testing.T) {
	const limit = 4096
	body := bytes.Repeat([]byte("y"), 200)
	frame := len(tcp.Frame(packet.CmdChatReq, body))
	overflow := make(chan int, 1) // how many sends succeeded
	h := newRecorder()
	h.onPkt = func(c *Conn, _ packet.Packet) {
		for i := 0; ; i++ {
			if err := c.Send(packet.Packet{Cmd: packet.CmdChatReq, Body: body}); err != nil {
				if !errors.Is(err, ErrSlowConsumer) {
					t.Errorf("send %d: %v, want ErrSlowConsumer", i, err)
				}
				overflow <- i
				return
			}
		}
	}
	s := testServer(t, h, config.Limits{OutboundQueueBytes: limit})
	server, client := net.Pipe()
	defer client.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.serveStream(ProtoTCP, nil, server, bufio.NewReader(server))
	}()
	// One packet from the client sets the handler sending; the client reads nothing
	// until the queue has overflowed.
	go func() { _, _ = client.Write(tcp.Frame(packet.CmdHeartbeatReq, []byte(`{}`))) }()
	var sent int
	select {
	case sent = <-overflow:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's sends never overflowed the queue")
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("reading until the server closes: %v", err)
	}
	if len(got)%frame != 0 || len(got)/frame >= sent {
		t.Fatalf("client got %d bytes (%d frames of %d), want fewer whole frames than the %d sent", len(got), len(got)/frame, frame, sent)
	}
	for off := 0; off < len(got); off += frame {
		if got[off] != byte(packet.CmdChatReq) || binary.BigEndian.Uint32(got[off+1:]) != uint32(len(body)) {
			t.Fatalf("frame at %d: header % x", off, got[off:off+5])
		}
	}
	if reason := h.waitClosed(t); !strings.Contains(reason, "slow consumer") {
		t.Fatalf("Closed reason %q, want a slow consumer", reason)
	}
	<-served
}

// A packet the handler answers later (Later(1)) suspends the connection: the handler gets
// no further call for the connection until the answer (whether it comes before or after
// the drain stops), and every packet and the close still come in order, once.
func TestLaterOneParksConnection(t *testing.T) {
	h := newRecorder()
	s := testServer(t, h, config.Limits{})
	c := testConn(t, s, ProtoTCP)
	var held atomic.Bool // a hold is pending
	var violations atomic.Int32
	h.onPkt = func(c *Conn, p packet.Packet) {
		if held.Load() {
			violations.Add(1)
		}
		var n int
		if _, err := fmt.Sscanf(string(p.Body), `{"n":%d}`, &n); err != nil {
			t.Errorf("packet %q: %v", p.Body, err)
			return
		}
		if n%3 != 0 {
			return
		}
		c.Later(1)
		held.Store(true)
		later := func() {
			held.Store(false)
			c.Answered()
		}
		switch n % 4 {
		case 0:
			later() // released before the drain looks: it carries on
		default:
			go func() {
				time.Sleep(time.Duration(n%5) * 100 * time.Microsecond)
				later()
			}()
		}
	}
	want := injectNumbered(s, c, 3000, 4)
	h.waitClosed(t)
	checkCalls(t, h, want)
	if v := violations.Load(); v != 0 {
		t.Fatalf("the handler was called %d times while a packet was held", v)
	}
	if h.overlap.Load() {
		t.Fatal("handler calls for one connection overlapped")
	}
}

// Later with a limit pipelines answers: the handler goes on with the next packets while
// fewer than the limit are pending and is not called while the limit is reached; a
// packet that asks for AfterAnswers is handed again, once, after every pending answer;
// every packet and the close come in order, once.
func TestLaterPipelines(t *testing.T) {
	const limit = 4
	h := newRecorder()
	s := testServer(t, h, config.Limits{})
	c := testConn(t, s, ProtoTCP)
	var pending atomic.Int32 // answers announced and not yet given
	var overLimit, barrierEarly, barrierWaits atomic.Int32
	var answers sync.WaitGroup
	h.onPkt = func(c *Conn, p packet.Packet) {
		var n int
		if _, err := fmt.Sscanf(string(p.Body), `{"n":%d}`, &n); err != nil {
			t.Errorf("packet %q: %v", p.Body, err)
			return
		}
		if pending.Load() >= limit {
			overLimit.Add(1)
		}
		if n%10 == 9 { // a barrier: needs every earlier answer
			if c.AfterAnswers() {
				barrierWaits.Add(1)
				h.undo() // not handled this time: the recorder must see it once
				return
			}
			if pending.Load() != 0 {
				barrierEarly.Add(1)
			}
			return
		}
		pending.Add(1)
		c.Later(limit)
		answers.Add(1)
		go func() {
			defer answers.Done()
			time.Sleep(time.Duration(n%7) * 50 * time.Microsecond)
			pending.Add(-1)
			c.Answered()
		}()
	}
	want := injectNumbered(s, c, 2000, 5)
	h.waitClosed(t)
	answers.Wait()
	checkCalls(t, h, want)
	if v := overLimit.Load(); v != 0 {
		t.Errorf("the handler was called %d times with %d answers pending", v, limit)
	}
	if v := barrierEarly.Load(); v != 0 {
		t.Errorf("a barrier packet was handled %d times with answers pending", v)
	}
	if barrierWaits.Load() == 0 {
		t.Error("no barrier packet ever waited: the test did not pipeline")
	}
	if p := c.Pending(); p != 0 {
		t.Errorf("Pending() = %d after every answer", p)
	}
}

// BenchmarkTransport is what a chat pays for the message hook's view of its connection
// (the remote address included).
func BenchmarkTransport(b *testing.B) {
	c := &Conn{}
	c.setRemote(netip.MustParseAddrPort("127.0.0.2:54321"))
	b.ReportAllocs()
	for b.Loop() {
		if c.Transport().RemoteAddr != "127.0.0.2:54321" {
			b.Fatal("wrong address")
		}
	}
}

// TestRemoteAddr: a connection reports its peer's address as netip formats it, for every
// kind of address, and the cached text of IPv4 addresses stays right when many
// connections (more than the cache holds, several sharing a slot) ask at once.
func TestRemoteAddr(t *testing.T) {
	for _, s := range []string{"127.0.0.1:1", "10.0.0.255:65535", "0.0.0.0:0", "255.255.255.255:65535",
		"[::1]:8080", "[fe80::1%eth0]:443", "[::ffff:1.2.3.4]:5"} {
		c := &Conn{}
		c.setRemote(netip.MustParseAddrPort(s))
		for range 2 { // formatted, then cached
			if got := c.RemoteAddr(); got != s {
				t.Errorf("RemoteAddr of %s = %q", s, got)
			}
			if got := c.Transport().RemoteAddr; got != s {
				t.Errorf("Transport().RemoteAddr of %s = %q", s, got)
			}
		}
		c.forgetRemote()
	}
	if got := (&Conn{}).RemoteAddr(); got != "" {
		t.Errorf("RemoteAddr without an address = %q, want empty", got)
	}

	conns := make([]*Conn, 3*addrTextSlots)
	for i := range conns {
		conns[i] = &Conn{}
		conns[i].setRemote(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), uint16(40000+i)))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for round := range 3 {
				for i := range conns {
					c := conns[(i*(w+1)+round)%len(conns)]
					if got, want := c.RemoteAddr(), c.remoteAddrPort().String(); got != want {
						t.Errorf("RemoteAddr = %q, want %q", got, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// injectNumbered injects n packets {"n":i} into c, per at a time, then the close, and
// returns the handler calls that must follow, in order.
func injectNumbered(s *Server, c *Conn, n, per int) []string {
	want := []string{"open"}
	for i := 0; i < n; i += per {
		ps := make([]packet.Packet, min(per, n-i))
		for j := range ps {
			ps[j] = chatPkt(i + j)
			want = append(want, fmt.Sprintf(`{"n":%d}`, i+j))
		}
		c.Inject(ps...)
	}
	s.finished(c, "peer closed the connection")
	return append(want, "closed")
}

// checkCalls requires the handler's calls to be want, in order.
func checkCalls(t *testing.T, h *recorder, want []string) {
	t.Helper()
	got := h.recorded()
	if len(got) != len(want) {
		t.Fatalf("handler got %d calls, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("call %d is %s, want %s", i, got[i], want[i])
		}
	}
}
