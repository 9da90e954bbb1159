package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/panjf2000/gnet/v2"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
)

// ErrClosed is returned by Send on a connection that is closing.
var ErrClosed = errors.New("connection closed")

// ErrSlowConsumer is returned by Send when the connection's outbound queue is full; the
// connection is then closed.
var ErrSlowConsumer = errors.New("slow consumer: outbound queue full")

// waker tells a stream connection's writer goroutine that output is pending (an event
// loop connection's writer is its gnet.Conn, woken through its loop's flusher, flush.go).
type waker interface {
	wake()
}

type eventKind uint8

const (
	evOpen eventKind = iota
	evPacket
	evClosed
)

type event struct {
	kind   eventKind
	pkt    packet.Packet
	reason string
}

// Conn is one client connection of any protocol. The handler sees packets from it, one at
// a time and in order, and sends packets to it from any goroutine.
//
// Its layout is kept tight (it fits the 128-byte size class): it exists once per idle
// connection, and memory per idle connection is a design target. Output and input queues
// are pooled buffers attached only while they hold something; the remote address is
// stored inline; protocol names are interned.
type Conn struct {
	id    uint64
	srv   *Server
	codec codec.Codec

	// Value is the handler's per-connection state. The transport never touches it; the
	// handler reads and writes it only from its own calls for this connection, which
	// never run concurrently.
	Value any

	w      any      // the writer to wake: a gnet.Conn (event loop) or a waker; under mu
	out    *[]byte  // pooled output buffer, nil when nothing is queued; under mu
	inbox  *[]event // pooled event queue, nil when empty; under mu
	reason *string  // why the connection closes, once it does; under mu

	raddr    [16]byte // remote address (IPv4 in its first 4 bytes for rkind addr4)
	rport    uint16
	rkind    uint8         // addrNone, addr4, addr6, addr6Zone
	proto    uint8         // index into the interned protocol names
	lastRead atomic.Uint32 // coarse clock, unix seconds

	slot   uint32 // 1 + index in Server.conns while listed, 0 when not; under Server.connsMu
	oflags uint16 // the fl* flags below; under mu
	pend   uint8  // answers announced by Later and not yet Answered; under mu
	frame  uint8  // when the incomplete frame buffered began (frameStamp), 0: none; written under mu by the reader

	// mu guards the output side (out, reason, oflags, w) and the input side (inbox,
	// running, done): one lock rather than two keeps Conn in the 128-byte size class,
	// and both are held only for a few instructions.
	mu sync.Mutex
}

const (
	flWakePending uint16 = 1 << iota // a wake is on its way to the writer
	flClosing                        // close after writing what is queued
	flAbort                          // close without flushing (slow consumer)
	flHeard                          // packets arrived since the goodbye last looked (goaway.go)
	flHold                           // the handler is at a batch of c's packets: their answers wake the writer once, after it
	flSuspended                      // answers pending reached the handler's max: park after the packet being handled (Later)
	flParked                         // handling waits for an answer (Answered)
	flParkAll                        // with flParked: waits for every pending answer (AfterAnswers)
	flRequeue                        // the packet being handled is handed again after every pending answer (AfterAnswers)
	flRunning                        // a worker drains the inbox
	flDone                           // evClosed queued
)

func (c *Conn) has(f uint16) bool { return c.oflags&f != 0 }

func (c *Conn) set(f uint16, on bool) {
	if on {
		c.oflags |= f
	} else {
		c.oflags &^= f
	}
}

// wakeWriter tells w, c's writer, that output is pending.
func wakeWriter(c *Conn, w any) {
	switch w := w.(type) {
	case nil:
	case gnet.Conn:
		c.srv.loop.wake(c, w)
	case waker:
		w.wake()
	}
}

// ID is unique among the gateway's connections for the life of the process.
func (c *Conn) ID() uint64 { return c.id }

// Protocol names the wire protocol: tcp, ws, tls+tcp, wss.
func (c *Conn) Protocol() string { return protoName(c.proto) }

// Transport implements the command layer's typed view of how c reached the gateway.
func (c *Conn) Transport() session.Transport {
	name := c.Protocol()
	t := session.Transport{Protocol: name, RemoteAddr: c.RemoteAddr()}
	switch name {
	case ProtoTLSTCP:
		t.Protocol, t.TLS = ProtoTCP, true
	case ProtoWSS:
		t.Protocol, t.TLS = ProtoWS, true
	default:
		if base, ok := strings.CutSuffix(name, tlsSuffix); ok { // a plugin protocol over TLS
			t.Protocol, t.TLS = base, true
		}
	}
	return t
}

// State returns the handler's per-connection slot (Value).
func (c *Conn) State() *any { return &c.Value }

// RemoteAddr is the peer's address. The text of an IPv4 address comes from addrTexts
// when it is there: every chat asks for it (the message hook's view of the connection).
func (c *Conn) RemoteAddr() string {
	if c.rkind == addr4 {
		return addr4Text([4]byte(c.raddr[:4]), c.rport)
	}
	ap := c.remoteAddrPort()
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// addrTexts caches the text of IPv4 remote addresses ("ip:port"), so that asking a busy
// connection for its address does not format and allocate it every time. It is a fixed
// table outside the connections (a Conn has no room for it, and an idle connection must
// not pay for it): direct-mapped by a hash of address and port, an entry replaced by the
// next address that maps to its slot. At most addrTextSlots entries of 32 bytes and the
// table of pointers: 160 KiB, whatever the number of connections.
var addrTexts [addrTextSlots]atomic.Pointer[addrText]

const addrTextBits = 12
const addrTextSlots = 1 << addrTextBits

// addrText is one cached address: immutable once published in addrTexts.
type addrText struct {
	key uint64 // 1<<48 | ip<<16 | port: never 0
	n   uint8
	b   [len("255.255.255.255:65535")]byte
}

// addr4Text returns the text of ip:port.
func addr4Text(ip [4]byte, port uint16) string {
	key := 1<<48 | uint64(ip[0])<<40 | uint64(ip[1])<<32 | uint64(ip[2])<<24 | uint64(ip[3])<<16 | uint64(port)
	slot := &addrTexts[(key*0x9E3779B97F4A7C15)>>(64-addrTextBits)]
	e := slot.Load()
	if e == nil || e.key != key {
		e = &addrText{key: key}
		e.n = uint8(len(netip.AddrPortFrom(netip.AddrFrom4(ip), port).AppendTo(e.b[:0])))
		slot.Store(e)
	}
	return unsafe.String(&e.b[0], int(e.n))
}

// Send queues p to the connection. It never blocks: when more than the configured
// outbound limit is waiting, the connection is closed as a slow consumer.
func (c *Conn) Send(p packet.Packet) error {
	return c.enqueue(&p, nil)
}

// enqueue appends p, encoded, or else raw to the outbound buffer under the queue limit
// and wakes the writer.
func (c *Conn) enqueue(p *packet.Packet, raw []byte) error {
	size := len(raw)
	if p != nil {
		size = len(p.Body)
	}
	c.mu.Lock()
	if c.has(flClosing) {
		c.mu.Unlock()
		return ErrClosed
	}
	queued := 0
	if c.out != nil {
		queued = len(*c.out)
	}
	if queued+size+16 > c.srv.limits().OutboundQueueBytes {
		c.set(flClosing|flAbort, true)
		reason := fmt.Sprintf("slow consumer: %d bytes queued, limit %d", queued, c.srv.limits().OutboundQueueBytes)
		c.reason = &reason
		if c.out != nil {
			putBuf(c.out)
			c.out = nil
		}
		w := c.w
		c.mu.Unlock()
		wakeWriter(c, w)
		return ErrSlowConsumer
	}
	if p != nil {
		c.srv.stats.PacketsOut.Add(1)
		bp := c.out
		if bp == nil {
			bp = getBuf()
		}
		n := len(*bp)
		if out := c.codec.Encode(*bp, *p); len(out) != n {
			*bp = out
		} else {
			// An asynchronous codec took the packet; its bytes come through WriteRaw,
			// which wakes the writer then.
			if c.out == nil {
				putBuf(bp)
			}
			c.mu.Unlock()
			return nil
		}
		c.out = bp
	} else {
		if c.out == nil {
			c.out = getBuf()
		}
		*c.out = append(*c.out, raw...)
	}
	if c.has(flHold) {
		c.mu.Unlock() // drain wakes the writer after the batch
		return nil
	}
	wake := !c.has(flWakePending) && c.w != nil
	c.set(flWakePending, true)
	w := c.w
	c.mu.Unlock()
	if wake {
		wakeWriter(c, w)
	}
	return nil
}

var _ codec.Sink = (*Conn)(nil)

// Inject implements codec.Sink: an asynchronous codec's decoded packets.
func (c *Conn) Inject(pkts ...packet.Packet) {
	if len(pkts) == 0 {
		return
	}
	c.lastRead.Store(uint32(c.srv.clock.Load()))
	c.srv.stats.PacketsIn.Add(uint64(len(pkts)))
	c.pushPackets(pkts)
}

// WriteRaw implements codec.Sink: bytes an asynchronous codec encoded.
func (c *Conn) WriteRaw(b []byte) error {
	return c.enqueue(nil, b)
}

// reply queues a codec's own answer (upgrade response, pong) behind what is already
// queued, ignoring the queue limit and a pending close: the codec must get it out.
func (c *Conn) reply(b []byte) {
	c.mu.Lock()
	if c.out == nil {
		c.out = getBuf()
	}
	*c.out = append(*c.out, b...)
	c.mu.Unlock()
}

// Close flushes what is queued, says goodbye where the protocol has a way to, and closes
// the connection. reason is logged and handed to the handler's Closed.
func (c *Conn) Close(reason string) { c.closeWith(reason, false) }

// closeWith is Close; goingAway says the server is shutting down, which a WebSocket
// close frame tells with status 1001 (going away).
func (c *Conn) closeWith(reason string, goingAway bool) {
	c.mu.Lock()
	if c.has(flClosing) {
		c.mu.Unlock()
		return
	}
	c.set(flClosing, true)
	c.reason = &reason
	if bye := goodbyeOf(c.codec, goingAway); bye != nil {
		bp := c.out
		if bp == nil {
			bp = getBuf()
		}
		*bp = bye(*bp, reason)
		if len(*bp) > 0 || c.out != nil {
			c.out = bp
		} else {
			putBuf(bp)
		}
	}
	w := c.w
	c.set(flWakePending, true)
	c.mu.Unlock()
	wakeWriter(c, w)
}

// setWaker attaches the writer (a gnet.Conn or a waker) once the connection is
// registered, and reports whether output is already waiting.
func (c *Conn) setWaker(w any) (pending bool) {
	c.mu.Lock()
	c.w = w
	pending = (c.out != nil && len(*c.out) > 0) || c.has(flClosing)
	c.set(flWakePending, pending)
	c.mu.Unlock()
	return pending
}

// takeOut hands the writer everything queued (nil when nothing is); the writer gives the
// buffer back with giveBack once written. closing tells it to close after writing;
// abort, to close without writing.
func (c *Conn) takeOut() (buf *[]byte, closing, abort bool) {
	c.mu.Lock()
	buf = c.out
	c.out = nil
	c.set(flWakePending, false)
	closing, abort = c.has(flClosing), c.has(flAbort)
	c.mu.Unlock()
	if abort && buf != nil {
		putBuf(buf)
		buf = nil
	}
	if buf != nil {
		c.srv.stats.BytesOut.Add(uint64(len(*buf)))
	}
	return buf, closing, abort
}

// giveBack returns a written buffer to the shared pool: an idle connection keeps no
// output buffer (memory per idle connection matters more than one pool round trip).
func (c *Conn) giveBack(buf *[]byte) {
	if buf != nil {
		putBuf(buf)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte {
	bp := bufPool.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

func putBuf(bp *[]byte) {
	if c := cap(*bp); c == 0 || c > 64<<10 {
		return
	}
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}

// closeReason returns the reason recorded by Close, if any.
func (c *Conn) closeReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == nil {
		return ""
	}
	return *c.reason
}

// markClosing records that the peer or the network ended the connection.
func (c *Conn) markClosing(reason string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.has(flClosing) {
		c.set(flClosing, true)
		c.reason = &reason
	}
	c.w = nil
	if c.reason == nil {
		return ""
	}
	return *c.reason
}

// maxInbox bounds the packets decoded but not yet handled for one connection.
const maxInbox = 8192

// push queues events for the handler and makes sure a worker drains them.
func (c *Conn) push(evs ...event) {
	if !c.lockRoom(len(evs), evs[0].kind == evPacket) {
		return
	}
	for _, e := range evs {
		if e.kind == evClosed {
			c.set(flDone, true)
		}
	}
	*c.inbox = append(*c.inbox, evs...)
	c.unlockStart()
}

// pushPackets is push of a packet event for each of pkts, without a slice of events
// made for the purpose.
func (c *Conn) pushPackets(pkts []packet.Packet) {
	if !c.lockRoom(len(pkts), true) {
		return
	}
	for _, p := range pkts {
		*c.inbox = append(*c.inbox, event{kind: evPacket, pkt: p})
	}
	c.unlockStart()
}

// lockRoom locks c to queue n events (packets: they are packets) into its inbox, which
// it makes sure exists. It returns false, with c unlocked, when c takes no more events
// or n more packets would overflow its inbox (c is then closed).
func (c *Conn) lockRoom(n int, packets bool) bool {
	c.mu.Lock()
	if c.has(flDone) {
		c.mu.Unlock()
		return false
	}
	if packets {
		queued := 0
		if c.inbox != nil {
			queued = len(*c.inbox)
		}
		if queued+n > maxInbox {
			c.mu.Unlock()
			c.Close(fmt.Sprintf("inbound queue overflow: more than %d packets waiting", maxInbox))
			return false
		}
		c.set(flHeard, true)
	}
	if c.inbox == nil {
		c.inbox = getEvents()
	}
	return true
}

// unlockStart unlocks c after events were queued and starts a worker when none drains
// c.
func (c *Conn) unlockStart() {
	start := !c.has(flRunning)
	c.set(flRunning, true)
	c.mu.Unlock()
	if start {
		c.srv.submit(c.drain)
	}
}

// drain runs on a pool worker: it hands queued events to the handler in order. The
// inbox is detached while its events are handled, so that pushes meanwhile go to a new
// one, and returned to the pool after: an idle connection holds no queue. What the
// handler queues to c itself while at a batch (the answers to its packets) is written
// with one wake after the batch rather than one each (flHold).
func (c *Conn) drain() {
	for {
		c.mu.Lock()
		batch := c.inbox
		c.inbox = nil
		if batch == nil {
			c.set(flRunning, false)
			c.mu.Unlock()
			return
		}
		hold := len(*batch) > 1
		c.set(flHold, hold)
		c.mu.Unlock()
		l := c.srv.loop
		if l != nil {
			l.batchBegin()
		}
		var held time.Time
		if hold {
			held = time.Now()
		}
		evs := *batch
		for i := 0; i < len(evs); i++ {
			e := &evs[i]
			switch e.kind {
			case evOpen:
				c.srv.handler.Opened(c)
			case evPacket:
				c.srv.handler.Packet(c, e.pkt)
				switch c.park(batch, i) {
				case handleAgain:
					i-- // every answer came meanwhile: hand the packet again now
					continue
				case parked:
					// Waiting for answers: what the batch sent so far goes out now.
					c.release()
					if l != nil {
						l.batchEnd()
					}
					return
				}
			case evClosed:
				c.srv.handler.Closed(c, e.reason)
				c.forgetRemote() // the handler was the last to ask for it
			}
			*e = event{}
			if hold && i < len(evs)-1 && time.Since(held) > maxHold {
				// A slow batch (a store that takes its time): write what it sent so far.
				c.release()
				if l != nil {
					l.kick()
				}
				c.mu.Lock()
				c.set(flHold, true)
				c.mu.Unlock()
				held = time.Now()
			}
		}
		putEvents(batch)
		c.release()
		if l != nil {
			l.batchEnd()
		}
	}
}

// Later says that the answer to the packet being handled comes later, from another
// goroutine (a stored chat's ack, from the store's callback), and no worker waits for it
// meanwhile. The connection goes on with its next packets while fewer than max answers
// are pending, and otherwise parks (its packets queue as usual, bounded by maxInbox)
// until one comes. Call Later only from Handler.Packet, at most once per packet, and
// Answered exactly once for each, from any goroutine, when the answer is queued (in the
// order the handler wants the client to read them: the transport does not reorder).
// limit is clamped to 1..255; Later(1) suspends the connection until the answer.
func (c *Conn) Later(limit int) {
	limit = min(max(limit, 1), 255)
	c.mu.Lock()
	c.pend++
	if int(c.pend) >= limit {
		c.set(flSuspended, true)
	}
	c.mu.Unlock()
}

// Answered says that one answer announced by Later is queued: a connection parked for
// want of room (Later) carries on, on a pool worker; one waiting for every answer
// (AfterAnswers) carries on after the last.
func (c *Conn) Answered() {
	c.mu.Lock()
	if c.pend == 0 {
		c.mu.Unlock()
		panic("transport: Conn.Answered without a pending Later")
	}
	c.pend--
	if !c.has(flParked) {
		// The drain has not looked yet: there is room again.
		c.set(flSuspended, false)
		c.mu.Unlock()
		return
	}
	if c.has(flParkAll) && c.pend > 0 {
		c.mu.Unlock()
		return
	}
	c.set(flParked|flParkAll, false)
	if c.inbox == nil {
		// Nothing arrived meanwhile: no worker needed (the next push starts one).
		c.set(flRunning, false)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.srv.submit(c.drain)
}

// AfterAnswers is for a packet that must be handled after every answer pending from
// Later (a query that must see the chats stored, a logout): it reports whether any is
// pending; then the handler returns without handling the packet, and gets it again once
// the last answer is queued. Call it only from Handler.Packet.
func (c *Conn) AfterAnswers() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pend == 0 {
		return false
	}
	c.set(flRequeue, true)
	return true
}

// Pending returns how many answers announced by Later are not yet Answered.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.pend)
}

// parkResult is what drain does after a packet.
type parkResult uint8

const (
	carryOn     parkResult = iota // the next packet
	handleAgain                   // the same packet again (AfterAnswers, and the answers came)
	parked                        // stop: an Answered goes on
)

// park is called by drain after the packet at index i of batch: when the handler must
// wait for answers (Later at its max, or AfterAnswers), the events of batch from the
// next one on (from this one on, for AfterAnswers) go back to the front of the inbox, and
// drain stops (flRunning stays set, so that no other worker starts) until Answered.
func (c *Conn) park(batch *[]event, i int) parkResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := i + 1
	switch {
	case c.has(flRequeue):
		c.set(flRequeue, false)
		if c.pend == 0 {
			return handleAgain
		}
		c.set(flParkAll, true)
		next = i
	case c.has(flSuspended):
	default:
		(*batch)[i] = event{}
		return carryOn
	}
	c.set(flSuspended, false)
	c.set(flParked, true)
	evs := *batch
	n := copy(evs, evs[next:])
	clear(evs[n:])
	*batch = evs[:n]
	if c.inbox != nil {
		*batch = append(*batch, *c.inbox...)
		clear(*c.inbox)
		putEvents(c.inbox)
	}
	if len(*batch) == 0 {
		putEvents(batch)
		c.inbox = nil
		return parked
	}
	c.inbox = batch
	return parked
}

// maxHold bounds how long a batch of packets holds back what it sends (flHold, and the
// deferred wakes of flush.go).
const maxHold = 200 * time.Microsecond

// release ends a batch's hold on c's writer and wakes it when output is waiting.
func (c *Conn) release() {
	c.mu.Lock()
	if !c.has(flHold) {
		c.mu.Unlock()
		return
	}
	c.set(flHold, false)
	wake := c.out != nil && len(*c.out) > 0 && !c.has(flWakePending) && c.w != nil
	if wake {
		c.set(flWakePending, true)
	}
	w := c.w
	c.mu.Unlock()
	if wake {
		wakeWriter(c, w)
	}
}

var eventPool = sync.Pool{New: func() any { e := make([]event, 0, 8); return &e }}

func getEvents() *[]event { return eventPool.Get().(*[]event) }

func putEvents(e *[]event) {
	if cap(*e) > 256 {
		return // a burst's queue: let it go
	}
	*e = (*e)[:0]
	eventPool.Put(e)
}

// Remote address kinds (Conn.rkind).
const (
	addrNone uint8 = iota
	addr4
	addr6
	addr6Zone // IPv6 with a zone, kept in zones
)

// zones holds the zones of the rare remote addresses that have one (link-local IPv6),
// by connection, so that Conn need not carry a field for them.
var zones sync.Map // *Conn -> string

// setRemote stores ap inline.
func (c *Conn) setRemote(ap netip.AddrPort) {
	a := ap.Addr()
	c.rport = ap.Port()
	switch {
	case !a.IsValid():
		c.rkind = addrNone
	case a.Is4():
		b := a.As4()
		copy(c.raddr[:], b[:])
		c.rkind = addr4
	default:
		c.raddr = a.As16()
		c.rkind = addr6
		if z := a.Zone(); z != "" {
			c.rkind = addr6Zone
			zones.Store(c, z)
		}
	}
}

// remoteAddrPort rebuilds the remote address.
func (c *Conn) remoteAddrPort() netip.AddrPort {
	var a netip.Addr
	switch c.rkind {
	case addr4:
		a = netip.AddrFrom4([4]byte(c.raddr[:4]))
	case addr6:
		a = netip.AddrFrom16(c.raddr)
	case addr6Zone:
		a = netip.AddrFrom16(c.raddr)
		if z, ok := zones.Load(c); ok {
			a = a.WithZone(z.(string))
		}
	default:
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, c.rport)
}

// forgetRemote drops what setRemote kept outside the Conn.
func (c *Conn) forgetRemote() {
	if c.rkind == addr6Zone {
		zones.Delete(c)
	}
}

// Protocol names are interned: a Conn stores a one-byte index.
var (
	protoMu    sync.Mutex
	protoTable atomic.Pointer[[]string]
)

func init() {
	t := []string{ProtoTCP, ProtoWS, ProtoTLSTCP, ProtoWSS}
	protoTable.Store(&t)
}

// protoIndex interns name. The table only grows (codec plugins' names, each also with
// "+tls"); past 256 distinct names, newcomers share the last slot and report its name.
func protoIndex(name string) uint8 {
	t := *protoTable.Load()
	for i, n := range t {
		if n == name {
			return uint8(i)
		}
	}
	protoMu.Lock()
	defer protoMu.Unlock()
	t = *protoTable.Load()
	for i, n := range t {
		if n == name {
			return uint8(i)
		}
	}
	if len(t) > 255 {
		return 255
	}
	nt := append(t[:len(t):len(t)], name)
	protoTable.Store(&nt)
	return uint8(len(nt) - 1)
}

func protoName(i uint8) string { return (*protoTable.Load())[i] }
