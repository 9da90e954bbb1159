package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// quiet drops the nodes' log lines (the tests assert on behaviour).
var quiet = slog.New(slog.DiscardHandler)

// conn is a connection that records what it is sent.
type conn struct {
	id     uint64
	mu     sync.Mutex
	got    []packet.Packet
	closed string
}

var connIDs atomic.Uint64

func newConn() *conn                { return &conn{id: connIDs.Add(1)} }
func (c *conn) ID() uint64          { return c.id }
func (c *conn) Protocol() string    { return "tcp" }
func (c *conn) Close(reason string) { c.mu.Lock(); c.closed = reason; c.mu.Unlock() }
func (c *conn) Send(p packet.Packet) error {
	c.mu.Lock()
	c.got = append(c.got, p)
	c.mu.Unlock()
	return nil
}

func (c *conn) received() []packet.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]packet.Packet(nil), c.got...)
}

func (c *conn) closedWith() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testNode is a node with its registry and seam, as app wires them.
type testNode struct {
	*Node
	reg     *session.Registry
	seam    router.Deliverer
	crashed bool
}

func startNode(t testing.TB, id, listen string, routes []string) *testNode {
	return startNodeLease(t, id, listen, routes, 600*time.Millisecond)
}

func startNodeLease(t testing.TB, id, listen string, routes []string, lease time.Duration) *testNode {
	t.Helper()
	reg := session.New()
	local := &router.Local{Registry: reg}
	cfg := config.Cluster{Enabled: true, NodeID: id, Lease: lease,
		NATS: config.NATS{Embedded: config.EmbeddedNATS{ClusterListen: listen, Routes: routes}}}
	n, err := Start(context.Background(), Options{Config: cfg, Registry: reg, Local: local, Addr: id + ":8888", Logger: quiet})
	if err != nil {
		t.Fatalf("start node %s: %v", id, err)
	}
	t.Cleanup(n.Stop)
	return &testNode{Node: n, reg: reg, seam: n.Wrap(local)}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cluster3(t *testing.T) []*testNode {
	addrs := []string{freePort(t), freePort(t), freePort(t)}
	var nodes []*testNode
	for i, id := range []string{"a", "b", "c"} {
		nodes = append(nodes, startNode(t, id, addrs[i], addrs))
	}
	for _, n := range nodes {
		eventually(t, n.id+" sees 3 nodes", func() bool { return len(n.Status().Nodes) == 3 })
	}
	return nodes
}

func TestClusterDeliversEveryKindAcrossNodes(t *testing.T) {
	nodes := cluster3(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	bob, carol1, carol2 := newConn(), newConn(), newConn()
	b.reg.Bind("bob", bob, session.Profile{Nick: "Bob"})
	c.reg.Bind("carol", carol1, session.Profile{})
	b.reg.Bind("carol", carol2, session.Profile{}) // carol on two nodes
	eventually(t, "a sees bob and carol online", func() bool {
		return a.View().ConnCount("bob") == 1 && a.View().ConnCount("carol") == 2
	})
	if u, ok := a.View().User("bob"); !ok || u.Nick != "Bob" || u.Status != "online" {
		t.Errorf("a's view of bob: %+v %v", u, ok)
	}

	chat := &packet.Chat{ID: "m1", From: "alice", To: "bob", ChatType: packet.ChatTypePrivate, Content: "hi", Cmd: packet.Int(packet.CmdChatReq)}
	out, err := a.seam.Deliver(context.Background(), router.Envelope{Kind: router.KindChat, Chat: chat, Seq: 7, Receivers: []string{"bob"}})
	if err != nil || out.Connections != 1 {
		t.Fatalf("deliver to bob: %+v %v", out, err)
	}
	eventually(t, "bob gets the chat", func() bool { return len(bob.received()) == 1 })
	var got packet.Chat
	if p := bob.received()[0]; p.Cmd != packet.CmdChatReq || packet.Decode(p.Body, &got) != nil || got.Seq != 7 || got.Content != "hi" {
		t.Fatalf("bob got %+v (%+v)", bob.received()[0], got)
	}

	// One notice to a group with members on b and c: one item per node.
	before := a.stats.items.Load()
	notice := packet.Packet{Cmd: packet.CmdJoinGroupNotify, Body: []byte(`{"cmd":9}`)}
	out, err = a.seam.Deliver(context.Background(), router.Envelope{Kind: router.KindNotice, Notice: notice, Receivers: []string{"bob", "carol", "nobody"}})
	if err != nil || out.Connections != 3 {
		t.Fatalf("notice: %+v %v", out, err)
	}
	if n := a.stats.items.Load() - before; n != 2 {
		t.Errorf("items published for 2 nodes: %d, want 2 (one per node, never one per member)", n)
	}
	eventually(t, "everyone gets the notice", func() bool {
		return len(bob.received()) == 2 && len(carol1.received()) == 1 && len(carol2.received()) == 1
	})

	out, err = c.seam.Deliver(context.Background(), router.Envelope{Kind: router.KindKick, Reason: "bye carol", Receivers: []string{"carol"}})
	if err != nil || out.Connections != 2 {
		t.Fatalf("kick: %+v %v", out, err)
	}
	eventually(t, "carol's connection on b is closed", func() bool { return carol2.closedWith() == "bye carol" })
}

func TestClusterReplicatesMembership(t *testing.T) {
	nodes := cluster3(t)
	nodes[0].reg.Join("room", "Room", "alice")
	nodes[1].reg.Join("room", "", "bob")
	for _, n := range nodes {
		eventually(t, n.id+" knows room's 2 members", func() bool {
			m, _ := n.reg.Members("room", nil)
			return len(m) == 2
		})
	}
	nodes[2].reg.Leave("room", "alice")
	eventually(t, "a sees alice left", func() bool { return !nodes[0].reg.IsMember("room", "alice") })
}

// crash stops a node without a goodbye, as kill -9 does.
func (n *testNode) crash() {
	if n.crashed {
		return
	}
	n.crashed = true
	n.reg.SetObserver(nil)
	close(n.stopped)
	n.wg.Wait()
	n.bus.close()
}

func TestClusterLeaseAndEpoch(t *testing.T) {
	addrs := []string{freePort(t), freePort(t)}
	a := startNode(t, "a", addrs[0], addrs)
	b := startNode(t, "b", addrs[1], addrs)
	b.reg.Bind("bob", newConn(), session.Profile{})
	eventually(t, "a sees bob", func() bool { return a.View().Online("bob") })

	b.crash()
	eventually(t, "bob offline on a after b's lease", func() bool { return !a.View().Online("bob") })
	if st := a.Status(); len(st.Nodes) != 1 {
		t.Errorf("a still lists %d nodes after b's lease expired", len(st.Nodes))
	}

	// b restarts with a new epoch and no users: bob must not come back.
	b2 := startNode(t, "b", addrs[1], addrs)
	eventually(t, "a sees b again", func() bool { return len(a.Status().Nodes) == 2 })
	time.Sleep(200 * time.Millisecond)
	if a.View().Online("bob") {
		t.Fatal("bob shows online after b restarted without him")
	}
	b2.reg.Bind("bob2", newConn(), session.Profile{})
	eventually(t, "a sees bob2 on the restarted b", func() bool { return a.View().Online("bob2") })

	// A goodbye drops the node at once.
	b2.Stop()
	eventually(t, "bob2 offline after b's goodbye", func() bool { return !a.View().Online("bob2") })
}

func TestClusterRefusesDuplicateNodeID(t *testing.T) {
	addrs := []string{freePort(t), freePort(t)}
	startNode(t, "a", addrs[0], addrs)
	reg := session.New()
	cfg := config.Cluster{Enabled: true, NodeID: "a", Lease: time.Second,
		NATS: config.NATS{Embedded: config.EmbeddedNATS{ClusterListen: addrs[1], Routes: addrs}}}
	var err error
	// The route must form before the second node can see the first.
	for i := 0; i < 50; i++ {
		var n *Node
		n, err = Start(context.Background(), Options{Config: cfg, Registry: reg, Local: &router.Local{Registry: reg}, Logger: quiet})
		if err != nil {
			break
		}
		n.Stop()
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(err, ErrNodeIDInUse) {
		t.Fatalf("second node with id a: %v, want ErrNodeIDInUse", err)
	}
}

// BenchmarkClusterDeliver measures the sender's cost of a private chat to a user on
// another node (what a pool worker spends; the bus work happens in the flusher).
func BenchmarkClusterDeliver(b *testing.B) {
	addrs := []string{freePort(b), freePort(b)}
	na := startNodeLease(b, "a", addrs[0], addrs, 3*time.Second)
	nb := startNodeLease(b, "b", addrs[1], addrs, 3*time.Second)
	var recv atomic.Int64
	for i := 0; i < 100; i++ {
		nb.reg.Bind(fmt.Sprint("u", i), &countConn{id: uint64(i + 1), n: &recv}, session.Profile{})
	}
	deadline := time.Now().Add(10 * time.Second)
	for na.View().ConnCount("u99") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	chat := &packet.Chat{ID: "m", From: "x", To: "u1", ChatType: packet.ChatTypePrivate, Content: "hello there", Cmd: packet.Int(packet.CmdChatReq)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = na.seam.Deliver(context.Background(), router.Envelope{Kind: router.KindChat, Chat: chat, Receivers: []string{"u1"}})
	}
	for recv.Load() < int64(b.N) && time.Now().Before(deadline.Add(time.Minute)) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(na.stats.items.Load())/float64(max(na.stats.published.Load(), 1)), "items/batch")
	b.ReportMetric(float64(recv.Load())/float64(b.N), "delivered/op")
}

type countConn struct {
	id uint64
	n  *atomic.Int64
}

func (c *countConn) ID() uint64               { return c.id }
func (c *countConn) Protocol() string         { return "tcp" }
func (c *countConn) Close(string)             {}
func (c *countConn) Send(packet.Packet) error { c.n.Add(1); return nil }
