package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// natsOn runs a NATS server (as an external one would be) on addr.
func natsOn(t *testing.T, addr string) *server.Server {
	t.Helper()
	host, port, err := splitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{Host: host, Port: port, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s
}

func externalNode(t *testing.T, id, url string) *testNode {
	t.Helper()
	reg := session.New()
	local := &router.Local{Registry: reg}
	cfg := config.Cluster{Enabled: true, NodeID: id, Lease: 600 * time.Millisecond, NATS: config.NATS{URLs: []string{url}}}
	n, err := Start(context.Background(), Options{Config: cfg, Registry: reg, Local: local, Logger: quiet})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(n.Stop)
	return &testNode{Node: n, reg: reg, seam: n.Wrap(local)}
}

// TestClusterBusDownAndBack: while the bus is down each node serves its own users and
// counts the others offline after the lease; when it is back, presence and delivery
// across nodes recover without a restart.
func TestClusterBusDownAndBack(t *testing.T) {
	addr := freePort(t)
	srv := natsOn(t, addr)
	a := externalNode(t, "a", "nats://"+addr)
	b := externalNode(t, "b", "nats://"+addr)
	bob, al := newConn(), newConn()
	b.reg.Bind("bob", bob, session.Profile{})
	a.reg.Bind("al", al, session.Profile{})
	eventually(t, "a sees bob", func() bool { return a.View().Online("bob") })

	srv.Shutdown()
	srv.WaitForShutdown()
	eventually(t, "a's bus is down", func() bool { return !a.Connected() })
	eventually(t, "bob offline on a after the lease", func() bool { return !a.View().Online("bob") })
	if st := a.Status(); st.Bus == "connected" || len(st.Nodes) != 1 {
		t.Errorf("status while the bus is down: bus %q, %d nodes", st.Bus, len(st.Nodes))
	}
	// Local delivery still works.
	note := packet.Packet{Cmd: packet.CmdJoinGroupNotify, Body: []byte(`{"cmd":9}`)}
	if out, err := a.seam.Deliver(context.Background(), router.Envelope{Kind: router.KindNotice, Notice: note, Receivers: []string{"al", "bob"}}); err != nil || out.Connections != 1 {
		t.Fatalf("local delivery with the bus down: %+v %v", out, err)
	}

	srv2 := natsOn(t, addr)
	defer srv2.Shutdown()
	eventually(t, "both reconnect", func() bool { return a.Connected() && b.Connected() })
	eventually(t, "a sees bob again", func() bool { return a.View().Online("bob") })
	eventually(t, "b sees al again", func() bool { return b.View().Online("al") })
	if out, err := a.seam.Deliver(context.Background(), router.Envelope{Kind: router.KindNotice, Notice: note, Receivers: []string{"bob"}}); err != nil || out.Connections != 1 {
		t.Fatalf("delivery after the bus is back: %+v %v", out, err)
	}
	eventually(t, "bob gets the notice", func() bool { return len(bob.received()) == 1 })
}
