package codecplugin

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
	sdk "github.com/timgw/timgw/plugins/codec"
)

// protocol is a plugin's protocol as the transport sees it. It outlives the plugin's
// processes: a restarted plugin serves the same protocol object.
type protocol struct{ pl *plugin }

var _ codec.Protocol = (*protocol)(nil)

// Name implements codec.Protocol.
func (p *protocol) Name() string { return p.pl.cfg.Name }

// Recognize implements codec.Protocol with the recogniser the plugin declared at its
// handshake, evaluated here. Plugins not on the shared port never match.
func (p *protocol) Recognize(first []byte) codec.Match {
	m := p.pl.matcher.Load()
	if m == nil {
		return codec.NoMatch
	}
	return match(m.Match(first))
}

// matches maps the SDK's verdicts to the transport's.
var matches = [...]codec.Match{sdk.NoMatch: codec.NoMatch, sdk.NeedMore: codec.NeedMore, sdk.Matched: codec.Matched}

// match converts the SDK's verdict into the transport's (NoMatch for an unknown one).
func match(m sdk.Match) codec.Match {
	if m < 0 || int(m) >= len(matches) {
		return codec.NoMatch
	}
	return matches[m]
}

// NewCodec implements codec.Protocol: an asynchronous codec bound, at Attach, to the
// plugin process running then.
func (p *protocol) NewCodec(codec.Options) codec.Codec { return &connCodec{pl: p.pl} }

// connCodec is the codec of one connection of a plugin protocol: Decode forwards bytes
// to the plugin and Encode forwards packets; the plugin's answers come back through
// the Sink.
type connCodec struct {
	pl   *plugin
	gen  *generation // set by Attach; nil when the plugin was not running
	id   uint64
	sink codec.Sink
}

var (
	_ codec.Codec    = (*connCodec)(nil)
	_ codec.Attacher = (*connCodec)(nil)
	_ codec.Detacher = (*connCodec)(nil)
	_ codec.Drainer  = (*connCodec)(nil)
)

// drainTimeout bounds how long a closed connection waits for the plugin to hand back
// what it decoded from it.
const drainTimeout = 5 * time.Second

// Attach implements codec.Attacher.
func (c *connCodec) Attach(s codec.Sink) {
	c.sink = s
	g := c.pl.gen.Load()
	if g == nil {
		s.Close(fmt.Sprintf("codec plugin %s is not running (%s)", c.pl.cfg.Name, c.pl.state()))
		return
	}
	remote, transport := "", c.pl.cfg.Name
	if r, ok := s.(interface{ RemoteAddr() string }); ok {
		remote = r.RemoteAddr()
	}
	if p, ok := s.(interface{ Protocol() string }); ok {
		transport = p.Protocol()
	}
	id, err := g.attach(c, remote, transport)
	if err != nil {
		s.Close(fmt.Sprintf("codec plugin %s: %v", c.pl.cfg.Name, err))
		return
	}
	c.gen, c.id = g, id
}

// Decode implements codec.Codec: the bytes go to the plugin; its packets come back
// through Sink.Inject.
func (c *connCodec) Decode(in []byte, _ *codec.Decoded) (int, error) {
	if c.gen == nil || c.gen.dead.Load() {
		return len(in), nil // closing
	}
	if err := c.gen.client.Data(c.id, in); err != nil {
		return len(in), fmt.Errorf("codec plugin %s: %w", c.pl.cfg.Name, err)
	}
	return len(in), nil
}

// Encode implements codec.Codec: the packet goes to the plugin; its bytes come back
// through Sink.WriteRaw. dst is returned as it is.
func (c *connCodec) Encode(dst []byte, p packet.Packet) []byte {
	if c.gen == nil || c.gen.dead.Load() {
		return dst
	}
	if err := c.gen.client.Packet(c.id, sdk.Packet{Cmd: sdk.Cmd(p.Cmd), Body: p.Body}); err != nil {
		// Encode runs under the connection's output lock: close from elsewhere.
		go c.sink.Close(fmt.Sprintf("codec plugin %s: %v", c.pl.cfg.Name, err))
	} else if c.pl.packetsOut != nil {
		c.pl.packetsOut.Inc()
	}
	return dst
}

// Drain implements codec.Drainer: the plugin is told the connection is gone, and done
// runs when it has handed back everything it decoded (its closed frame), when its
// process ends, or after drainTimeout.
func (c *connCodec) Drain(done func()) {
	if c.gen == nil {
		done()
		return
	}
	c.gen.drain(c.id, done)
}

// Detach implements codec.Detacher (for transports that do not drain).
func (c *connCodec) Detach() { c.Drain(func() {}) }

// generation is one process of a plugin and the connections it serves. When the
// process ends, its connections are closed: their state lived in it.
type generation struct {
	pl     *plugin
	client *sdk.Client // set once Launch returned, before the generation is published
	// goodbye is written to each connection that fail closes (the plugin's Info.Goodbye).
	goodbye []byte
	nextID  atomic.Uint64
	dead    atomic.Bool

	mu       sync.RWMutex
	conns    map[uint64]*connCodec
	draining map[uint64]*drainWait // closed connections waiting for the plugin's closed frame

	// Packets of one connection that came one after another in a batch, injected
	// together (receiving goroutine only).
	pendConn *connCodec
	pend     []packet.Packet
}

// drainWait is a closed connection waiting for the plugin.
type drainWait struct {
	once  sync.Once
	done  func()
	timer *time.Timer
}

func (d *drainWait) finish() {
	d.once.Do(func() {
		if d.timer != nil {
			d.timer.Stop()
		}
		d.done()
	})
}

var _ sdk.HostHandler = (*generation)(nil)

func newGeneration(pl *plugin) *generation {
	return &generation{pl: pl, conns: make(map[uint64]*connCodec), draining: make(map[uint64]*drainWait)}
}

func (g *generation) attach(c *connCodec, remote, transport string) (uint64, error) {
	id := g.nextID.Add(1)
	g.mu.Lock()
	if g.dead.Load() {
		g.mu.Unlock()
		return 0, fmt.Errorf("plugin process ended")
	}
	g.conns[id] = c
	g.mu.Unlock()
	if err := g.client.Open(id, remote, transport); err != nil {
		g.mu.Lock()
		delete(g.conns, id)
		g.mu.Unlock()
		return 0, err
	}
	return id, nil
}

// drain tells the plugin connection id is gone and calls done when the plugin has
// forgotten it. The connection stays reachable for the plugin's last packets meanwhile.
func (g *generation) drain(id uint64, done func()) {
	w := &drainWait{done: done}
	g.mu.Lock()
	_, ok := g.conns[id]
	if !ok || g.dead.Load() {
		g.mu.Unlock()
		done()
		return
	}
	g.draining[id] = w
	w.timer = time.AfterFunc(drainTimeout, func() { g.closed(id) })
	g.mu.Unlock()
	if err := g.client.Close(id, "connection closed"); err != nil {
		g.closed(id)
	}
}

// closed forgets connection id and ends its drain.
func (g *generation) closed(id uint64) {
	g.mu.Lock()
	w := g.draining[id]
	delete(g.draining, id)
	delete(g.conns, id)
	g.mu.Unlock()
	if w != nil {
		w.finish()
	}
}

func (g *generation) conn(id uint64) *connCodec {
	g.mu.RLock()
	c := g.conns[id]
	g.mu.RUnlock()
	return c
}

// count returns the number of open connections.
func (g *generation) count() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.conns) - len(g.draining)
}

// Packet implements sdk.HostHandler.
func (g *generation) Packet(id uint64, sp sdk.Packet) {
	p := packet.Packet{Cmd: packet.Cmd(sp.Cmd), Body: sp.Body}
	if g.pl.packetsIn != nil {
		g.pl.packetsIn.Inc()
	}
	if g.pendConn != nil && g.pendConn.id == id {
		g.pend = append(g.pend, p)
		return
	}
	g.Flush()
	if c := g.conn(id); c != nil {
		g.pendConn, g.pend = c, append(g.pend, p)
	}
}

// Flush implements sdk.HostHandler: the gathered packets go to their connection.
func (g *generation) Flush() {
	if g.pendConn == nil {
		return
	}
	g.pendConn.sink.Inject(g.pend...) // Inject copies the slice
	clear(g.pend)
	g.pendConn, g.pend = nil, g.pend[:0]
}

// Write implements sdk.HostHandler.
func (g *generation) Write(id uint64, b []byte) {
	g.Flush()
	if c := g.conn(id); c != nil {
		_ = c.sink.WriteRaw(b) // a failure closes the connection (slow consumer) or it is closing
	}
}

// Close implements sdk.HostHandler.
func (g *generation) Close(id uint64, reason string) {
	g.Flush()
	if c := g.conn(id); c != nil {
		c.sink.Close(reason)
	}
}

// Closed implements sdk.HostHandler.
func (g *generation) Closed(id uint64) {
	g.Flush()
	g.closed(id)
}

// fail marks the generation dead, writes the plugin's goodbye to its connections,
// closes them with reason and ends the drains. It returns how many open connections
// were closed.
func (g *generation) fail(reason string) int {
	g.mu.Lock()
	g.dead.Store(true)
	conns, draining := g.conns, g.draining
	g.conns, g.draining = make(map[uint64]*connCodec), make(map[uint64]*drainWait)
	g.mu.Unlock()
	n := 0
	for id, c := range conns {
		if draining[id] == nil {
			if len(g.goodbye) > 0 {
				_ = c.sink.WriteRaw(g.goodbye) // best effort: the connection closes either way
			}
			c.sink.Close(reason)
			n++
		}
	}
	for _, w := range draining {
		w.finish()
	}
	return n
}
