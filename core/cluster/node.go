package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// Subjects. Per node, never per user: NATS interest grows with unique subjects times
// servers (docs/cluster.md).
const (
	subjPresence   = "timgw.presence"
	subjHeartbeat  = "timgw.hb"
	subjMembership = "timgw.groups"
)

func subjDeliver(node string) string { return "timgw.node." + node + ".deliver" }
func subjSync(node string) string    { return "timgw.node." + node + ".sync" }

// Options configure a Node.
type Options struct {
	// Config is the cluster section (enabled).
	Config config.Cluster
	// Registry is this node's registry: its changes are published, the other nodes'
	// membership changes applied to it.
	Registry *session.Registry
	// Local is the innermost stage of the delivery seam: where pushes from other nodes
	// are delivered.
	Local router.Deliverer
	// Addr is the address shown to other nodes' admins (default: Config.Advertise).
	Addr string
	// Version is the gateway's version, shown in admin status.
	Version string
	// Logger receives the cluster's lines.
	Logger *slog.Logger
}

// Node is this gateway's membership in the cluster.
type Node struct {
	id      string
	epoch   uint64
	cfg     config.Cluster
	reg     *session.Registry
	local   router.Deliverer
	log     *slog.Logger
	info    nodeInfo
	bus     *bus
	dir     *directory
	view    *View
	me      *localPresence
	stopped chan struct{}
	wg      sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*peer

	outMu    sync.Mutex
	outboxes map[string]*outbox

	stats counters
}

// peer is another node as this one knows it.
type peer struct {
	id       string
	epoch    uint64
	seq      uint64 // of the last presence change applied
	lastSeen time.Time
	info     nodeInfo
	users    map[string]struct{} // users with entries in the directory
	syncing  bool
	lag      uint64        // a heartbeat's seq this node had not reached yet (0: none)
	buffered []presenceMsg // changes received while a snapshot is on its way
}

// counters are the cluster's metrics.
type counters struct {
	published, bytes, items, dropped, received, malformed, resyncs atomic.Uint64
}

// ErrNodeIDInUse is returned by Start when a live node already has the node id.
var ErrNodeIDInUse = errors.New("cluster: node_id already in use")

// Start joins the cluster: it connects to the bus, refuses a node id that a live node
// has, subscribes, and starts the heartbeat and presence publishers.
func Start(ctx context.Context, o Options) (*Node, error) {
	cfg := o.Config.Resolved()
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var e [8]byte
	_, _ = rand.Read(e[:])
	n := &Node{id: cfg.NodeID, epoch: binary.BigEndian.Uint64(e[:]) | 1, cfg: cfg, reg: o.Registry, local: o.Local,
		log: o.Logger.With("component", "cluster", "node", cfg.NodeID), dir: newDirectory(), me: newLocalPresence(),
		stopped: make(chan struct{}), peers: make(map[string]*peer), outboxes: make(map[string]*outbox),
		info: nodeInfo{Addr: o.Addr, Started: time.Now().UnixMilli(), Version: o.Version}}
	if n.info.Addr == "" {
		n.info.Addr = cfg.Advertise
	}
	n.view = &View{reg: o.Registry, dir: n.dir}
	b, err := connect(cfg, n.log)
	if err != nil {
		return nil, err
	}
	n.bus = b
	if err := n.checkUnique(); err != nil {
		b.close()
		return nil, err
	}
	if err := n.subscribe(); err != nil {
		b.close()
		return nil, err
	}
	// This node's users so far (normally none: the cluster starts before the listeners).
	for _, u := range o.Registry.Users(session.FilterOnline) {
		n.me.record(u.UserID, o.Registry.ConnCount(u.UserID), session.Profile{Nick: u.Nick, Avatar: u.Avatar})
	}
	o.Registry.SetObserver(observer{n})
	n.wg.Add(3)
	go n.publishPresence()
	go n.heartbeats()
	go n.reaper()
	n.beat(false)
	n.log.Info("cluster: joined", "epoch", fmt.Sprintf("%016x", n.epoch), "bus", b.describe(cfg), "lease", cfg.Lease)
	return n, nil
}

// checkUnique asks whether a live node answers for this node's id.
func (n *Node) checkUnique() error {
	// Ask a few times: the peers' interest reaches a new route a moment after it forms.
	var msg *nats.Msg
	var err error
	for range 4 {
		if msg, err = n.bus.nc.Request(subjSync(n.id), nil, 250*time.Millisecond); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		n.log.Debug("cluster: node id free", "err", err, "routes", n.bus.routes())
		return nil // no responders, or none in time: the id is free
	}
	var snap presenceMsg
	_ = json.Unmarshal(msg.Data, &snap)
	addr := "?"
	if snap.Info != nil {
		addr = snap.Info.Addr
	}
	return fmt.Errorf("%w: node %q is live at %s; give every node its own cluster.node_id", ErrNodeIDInUse, n.id, addr)
}

func (n *Node) subscribe() error {
	nc := n.bus.nc
	subs := []struct {
		subj string
		fn   nats.MsgHandler
	}{
		{subjDeliver(n.id), n.onDeliver},
		{subjSync(n.id), n.onSync},
		{subjPresence, n.onPresence},
		{subjHeartbeat, n.onHeartbeat},
		{subjMembership, n.onMembership},
	}
	for _, s := range subs {
		sub, err := nc.Subscribe(s.subj, s.fn)
		if err != nil {
			return fmt.Errorf("cluster: subscribe %s: %w", s.subj, err)
		}
		_ = sub.SetPendingLimits(1<<20, 256<<20)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	return nil
}

// ID is this node's id.
func (n *Node) ID() string { return n.id }

// View is the cluster-wide presence.
func (n *Node) View() *View { return n.view }

// Connected reports whether the bus is up.
func (n *Node) Connected() bool { return n.bus.nc.IsConnected() }

// Stop says goodbye (the other nodes drop this node's users at once), flushes what is
// queued for other nodes, and leaves the bus.
func (n *Node) Stop() {
	select {
	case <-n.stopped:
		return
	default:
	}
	n.reg.SetObserver(nil)
	close(n.stopped)
	n.wg.Wait()
	n.flushAll()
	n.beat(true)
	_ = n.bus.nc.FlushTimeout(time.Second)
	n.bus.close()
	n.log.Info("cluster: left")
}

// observer feeds the registry's changes of this node to the bus.
type observer struct{ n *Node }

var _ session.Observer = observer{}

func (o observer) Presence(user string, conns int, p session.Profile) { o.n.me.record(user, conns, p) }

func (o observer) Membership(group, name, user string, joined bool) {
	o.n.publish(subjMembership, mustJSON(membership{Node: o.n.id, Group: group, Name: name, User: user, Joined: joined}))
}

func (n *Node) publish(subj string, data []byte) {
	if err := n.bus.nc.Publish(subj, data); err != nil {
		n.log.Warn("cluster: publish", "subject", subj, "err", err)
	}
}

// publishPresence publishes this node's presence changes as they come, batched.
func (n *Node) publishPresence() {
	defer n.wg.Done()
	for {
		select {
		case <-n.me.wake:
		case <-n.stopped:
			n.flushPresence()
			return
		}
		n.flushPresence()
	}
}

func (n *Node) flushPresence() {
	users, seq := n.me.take()
	if users != nil {
		n.publish(subjPresence, mustJSON(presenceMsg{Node: n.id, Epoch: n.epoch, Seq: seq, Users: users}))
	}
}

// heartbeats publishes a heartbeat every lease/3.
func (n *Node) heartbeats() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.beat(false)
		case <-n.stopped:
			return
		}
	}
}

func (n *Node) beat(bye bool) {
	seq, users, conns := n.me.counts()
	info := n.info
	info.Users, info.Conns = users, conns
	n.publish(subjHeartbeat, mustJSON(heartbeat{Node: n.id, Epoch: n.epoch, Seq: seq, Info: info, Bye: bye}))
}

// reaper drops the nodes whose lease expired.
func (n *Node) reaper() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Lease / 6)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.stopped:
			return
		}
		cut := time.Now().Add(-n.cfg.Lease)
		n.mu.Lock()
		for id, p := range n.peers {
			if p.lastSeen.Before(cut) {
				n.dropLocked(p, "lease expired")
				delete(n.peers, id)
			}
		}
		n.mu.Unlock()
	}
}

// dropLocked removes p's directory entries (n.mu held).
func (n *Node) dropLocked(p *peer, why string) {
	for u := range p.users {
		n.dir.set(u, p.id, 0)
	}
	n.log.Info("cluster: node dropped", "peer", p.id, "why", why, "users", len(p.users))
	p.users = make(map[string]struct{})
}

// onHeartbeat tracks the other nodes' leases and epochs.
func (n *Node) onHeartbeat(m *nats.Msg) {
	var hb heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Node == "" {
		n.stats.malformed.Add(1)
		return
	}
	if hb.Node == n.id {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[hb.Node]
	if hb.Bye {
		if p != nil && p.epoch == hb.Epoch {
			n.dropLocked(p, "left")
			delete(n.peers, hb.Node)
		}
		return
	}
	if p == nil || p.epoch != hb.Epoch {
		if p != nil {
			n.dropLocked(p, "restarted (new epoch)")
		} else {
			n.log.Info("cluster: node joined", "peer", hb.Node, "addr", hb.Info.Addr)
		}
		p = &peer{id: hb.Node, epoch: hb.Epoch, users: make(map[string]struct{})}
		n.peers[hb.Node] = p
		n.resyncLocked(p)
	}
	p.lastSeen, p.info = time.Now(), hb.Info
	// Behind the heartbeat's seq for two heartbeats running: presence changes were lost
	// (one heartbeat may overtake the change it counts: they travel on two subjects).
	switch {
	case hb.Seq <= p.seq || p.syncing:
		p.lag = 0
	case p.lag != 0 && p.seq < p.lag:
		p.lag = 0
		n.resyncLocked(p)
	default:
		p.lag = hb.Seq
	}
}

// onPresence applies another node's presence changes in order.
func (n *Node) onPresence(m *nats.Msg) {
	var pm presenceMsg
	if err := json.Unmarshal(m.Data, &pm); err != nil || pm.Node == "" {
		n.stats.malformed.Add(1)
		return
	}
	if pm.Node == n.id {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[pm.Node]
	if p == nil || p.epoch != pm.Epoch {
		// A node not heard of yet, or a new epoch: adopt it and take a snapshot.
		if p != nil {
			n.dropLocked(p, "restarted (new epoch)")
		}
		p = &peer{id: pm.Node, epoch: pm.Epoch, users: make(map[string]struct{}), lastSeen: time.Now()}
		n.peers[pm.Node] = p
		n.resyncLocked(p)
	}
	p.lastSeen = time.Now()
	switch {
	case p.syncing:
		p.buffered = append(p.buffered, pm)
	case pm.Seq <= p.seq:
		// already in the snapshot
	case pm.Seq == p.seq+1:
		n.applyLocked(p, pm)
	default:
		n.resyncLocked(p)
		p.buffered = append(p.buffered, pm)
	}
}

func (n *Node) applyLocked(p *peer, pm presenceMsg) {
	for _, u := range pm.Users {
		n.dir.set(u.ID, p.id, u.Conns)
		if u.Conns > 0 {
			p.users[u.ID] = struct{}{}
			n.reg.Remember(u.ID, session.Profile{Nick: u.Nick, Avatar: u.Avatar})
		} else {
			delete(p.users, u.ID)
		}
	}
	p.seq = pm.Seq
}

// snapshotChunk is how many users one snapshot message carries (NATS messages are
// bounded: 1 MiB by default).
const snapshotChunk = 4000

// resyncLocked asks p for a snapshot of its presence (n.mu held; the answer is applied
// in another goroutine).
func (n *Node) resyncLocked(p *peer) {
	if p.syncing {
		return
	}
	p.syncing = true
	n.stats.resyncs.Add(1)
	id, epoch := p.id, p.epoch
	go func() {
		snap, err := n.fetchSnapshot(id)
		n.mu.Lock()
		defer n.mu.Unlock()
		p := n.peers[id]
		if p == nil || p.epoch != epoch {
			return
		}
		p.syncing = false
		if err == nil && snap.Epoch != epoch {
			err = fmt.Errorf("snapshot of epoch %016x, want %016x", snap.Epoch, epoch)
		}
		if err != nil {
			n.log.Warn("cluster: presence snapshot failed; retrying at the next heartbeat", "peer", id, "err", err)
			p.seq, p.lag = 0, 0
			return
		}
		for u := range p.users {
			n.dir.set(u, p.id, 0)
		}
		p.users = make(map[string]struct{})
		n.applyLocked(p, snap)
		if snap.Info != nil {
			p.info = *snap.Info
		}
		for _, pm := range p.buffered {
			if pm.Seq == p.seq+1 {
				n.applyLocked(p, pm)
			}
		}
		p.buffered = nil
	}()
}

// fetchSnapshot asks node for its presence, which comes in chunks on an inbox.
func (n *Node) fetchSnapshot(node string) (presenceMsg, error) {
	nc := n.bus.nc
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return presenceMsg{}, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subjSync(node), inbox, nil); err != nil {
		return presenceMsg{}, err
	}
	var snap presenceMsg
	for {
		msg, err := sub.NextMsg(3 * time.Second)
		if err != nil {
			return presenceMsg{}, fmt.Errorf("snapshot of %s: %w", node, err)
		}
		var part presenceMsg
		if err := json.Unmarshal(msg.Data, &part); err != nil {
			return presenceMsg{}, fmt.Errorf("snapshot of %s: %w", node, err)
		}
		snap.Node, snap.Epoch, snap.Seq = part.Node, part.Epoch, part.Seq
		snap.Users = append(snap.Users, part.Users...)
		if part.Info != nil {
			snap.Info = part.Info // the last chunk carries it
			return snap, nil
		}
	}
}

// onSync answers a snapshot of this node's presence, in chunks; the last one carries
// the node's info.
func (n *Node) onSync(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	users, seq := n.me.snapshot()
	_, nu, nc := n.me.counts()
	info := n.info
	info.Users, info.Conns = nu, nc
	for len(users) > snapshotChunk {
		_ = n.bus.nc.Publish(m.Reply, mustJSON(presenceMsg{Node: n.id, Epoch: n.epoch, Seq: seq, Users: users[:snapshotChunk]}))
		users = users[snapshotChunk:]
	}
	_ = n.bus.nc.Publish(m.Reply, mustJSON(presenceMsg{Node: n.id, Epoch: n.epoch, Seq: seq, Users: users, Info: &info}))
}

// onMembership applies another node's group membership change.
func (n *Node) onMembership(m *nats.Msg) {
	var ms membership
	if err := json.Unmarshal(m.Data, &ms); err != nil || ms.Group == "" || ms.User == "" {
		n.stats.malformed.Add(1)
		return
	}
	if ms.Node == n.id {
		return
	}
	n.reg.Apply(ms.Group, ms.Name, ms.User, ms.Joined)
}

// NodeStatus describes a node in admin status.
type NodeStatus struct {
	ID       string    `json:"id"`
	Self     bool      `json:"self,omitempty"`
	Addr     string    `json:"addr"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Users    int       `json:"users"`
	Conns    int       `json:"connections"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LeaseAgeMs is how long ago its last heartbeat came (the node is dropped when it
	// reaches the lease).
	LeaseAgeMs int64 `json:"lease_age_ms"`
}

// Status is the cluster part of admin status.
type Status struct {
	NodeID    string       `json:"node_id"`
	Bus       string       `json:"bus"` // connected, reconnecting, closed
	Nodes     []NodeStatus `json:"nodes"`
	Published uint64       `json:"batches_published"`
	Items     uint64       `json:"items_published"`
	Dropped   uint64       `json:"items_dropped"`
	Received  uint64       `json:"items_received"`
	Malformed uint64       `json:"malformed_messages"`
	Resyncs   uint64       `json:"presence_resyncs"`
}

// Status reports the nodes this one knows (itself first) and the bus counters.
func (n *Node) Status() Status {
	_, users, conns := n.me.counts()
	st := Status{NodeID: n.id, Bus: busState(n.bus.nc),
		Published: n.stats.published.Load(), Items: n.stats.items.Load(), Dropped: n.stats.dropped.Load(),
		Received: n.stats.received.Load(), Malformed: n.stats.malformed.Load(), Resyncs: n.stats.resyncs.Load()}
	st.Nodes = append(st.Nodes, NodeStatus{ID: n.id, Self: true, Addr: n.info.Addr, Version: n.info.Version,
		Started: time.UnixMilli(n.info.Started), Users: users, Conns: conns})
	n.mu.Lock()
	var others []NodeStatus
	for _, p := range n.peers {
		others = append(others, NodeStatus{ID: p.id, Addr: p.info.Addr, Version: p.info.Version,
			Started: time.UnixMilli(p.info.Started), Users: len(p.users), Conns: p.info.Conns, LastSeen: p.lastSeen,
			LeaseAgeMs: time.Since(p.lastSeen).Milliseconds()})
	}
	n.mu.Unlock()
	sort.Slice(others, func(i, j int) bool { return others[i].ID < others[j].ID })
	st.Nodes = append(st.Nodes, others...)
	return st
}

func busState(nc *nats.Conn) string {
	switch {
	case nc.IsConnected():
		return "connected"
	case nc.IsClosed():
		return "closed"
	}
	return "reconnecting"
}
