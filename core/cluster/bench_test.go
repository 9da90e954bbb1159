package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCluster starts n nodes in this process, each with its embedded NATS.
func benchCluster(b *testing.B, ids ...string) []*testNode {
	addrs := make([]string, len(ids))
	for i := range ids {
		addrs[i] = freePort(b)
	}
	nodes := make([]*testNode, len(ids))
	for i, id := range ids {
		nodes[i] = startNodeLease(b, id, addrs[i], addrs, 3*time.Second)
	}
	return nodes
}

func waitB(b *testing.B, what string, ok func() bool) {
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkPrivateChatCPU compares the process CPU per private chat delivered to a user
// on the same node and to one on another node (sender stage, bus and receiving node
// included: both nodes run in this process), in one run.
func BenchmarkPrivateChatCPU(b *testing.B) {
	nodes := benchCluster(b, "a", "b")
	a, nb := nodes[0], nodes[1]
	var recv atomic.Int64
	a.reg.Bind("local", &countConn{id: 1, n: &recv}, session.Profile{})
	nb.reg.Bind("remote", &countConn{id: 2, n: &recv}, session.Profile{})
	waitB(b, "a sees remote", func() bool { return a.View().Online("remote") })
	chat := &packet.Chat{ID: "m", From: "x", ChatType: packet.ChatTypePrivate, Content: "a message of some forty bytes or so", Cmd: packet.Int(packet.CmdChatReq)}
	for _, to := range []string{"local", "remote"} {
		b.Run(to, func(b *testing.B) {
			c := *chat
			c.To = packet.Str(to)
			start, bytes0, items0 := recv.Load(), a.stats.bytes.Load(), a.stats.items.Load()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, _ = a.seam.Deliver(context.Background(), router.Envelope{Kind: router.KindChat, Chat: &c, Receivers: []string{to}})
			}
			waitB(b, "all delivered", func() bool { return recv.Load()-start >= int64(b.N) })
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/msg")
			if items := a.stats.items.Load() - items0; items > 0 {
				b.ReportMetric(float64(a.stats.bytes.Load()-bytes0)/float64(items), "bus-B/item")
				b.ReportMetric(float64(items)/float64(a.stats.published.Load()), "items/bus-msg")
			}
		})
	}
}

// BenchmarkGroupFanOut sends group messages to 10,000 members spread over three nodes and
// reports deliveries per second and bus items per group message (one per other node).
func BenchmarkGroupFanOut(b *testing.B) {
	nodes := benchCluster(b, "a", "b", "c")
	var recv atomic.Int64
	members := make([]string, 10_000)
	for i := range members {
		members[i] = fmt.Sprint("m", i)
		nodes[i%3].reg.Bind(members[i], &countConn{id: uint64(i + 1), n: &recv}, session.Profile{})
	}
	waitB(b, "a sees every member", func() bool { return a0Online(nodes[0], members) })
	chat := &packet.Chat{ID: "g", From: "m0", ChatType: packet.ChatTypeGroup, GroupID: "big", Content: "hello group", Cmd: packet.Int(packet.CmdChatReq)}
	items0 := nodes[0].stats.items.Load()
	start := recv.Load()
	cpu0 := cpuTime()
	t0 := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = nodes[0].seam.Deliver(context.Background(), router.Envelope{Kind: router.KindChat, Chat: chat, Receivers: members})
	}
	waitB(b, "all delivered", func() bool { return recv.Load()-start >= int64(b.N*len(members)) })
	b.StopTimer()
	el := time.Since(t0)
	n := float64(b.N * len(members))
	b.ReportMetric(n/el.Seconds(), "deliveries/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/n, "cpu-µs/delivery")
	b.ReportMetric(float64(nodes[0].stats.items.Load()-items0)/float64(b.N), "bus-items/msg")
}

func a0Online(n *testNode, members []string) bool {
	for i, m := range members {
		if i%3 != 0 && !n.View().Online(m) {
			return false
		}
	}
	return true
}

// BenchmarkPresenceVisible measures how long after a login on one node the other node
// sees the user online (p50 and p99 over b.N logins).
func BenchmarkPresenceVisible(b *testing.B) {
	nodes := benchCluster(b, "a", "b")
	lat := make([]time.Duration, 0, b.N)
	var n atomic.Int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := fmt.Sprint("p", i)
		t0 := time.Now()
		nodes[1].reg.Bind(u, &countConn{id: uint64(i + 1), n: &n}, session.Profile{})
		for !nodes[0].View().Online(u) {
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1e3, "p99-ms")
}

// BenchmarkDeadNodeNoticed measures how long after a node dies without goodbye the other
// sees its users offline (the lease is 3s here).
func BenchmarkDeadNodeNoticed(b *testing.B) {
	for i := 0; i < b.N; i++ {
		nodes := benchCluster(b, "a", "b")
		var n atomic.Int64
		nodes[1].reg.Bind("u", &countConn{id: 1, n: &n}, session.Profile{})
		waitB(b, "a sees u", func() bool { return nodes[0].View().Online("u") })
		t0 := time.Now()
		nodes[1].crash()
		waitB(b, "u offline", func() bool { return !nodes[0].View().Online("u") })
		b.ReportMetric(time.Since(t0).Seconds(), "s-to-notice")
	}
}
