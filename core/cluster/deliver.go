package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
)

// Limits of the per-node outboxes.
const (
	// maxBatchBytes bounds one bus message (NATS' default max_payload is 1 MiB).
	maxBatchBytes = 512 << 10
	// maxPendingBytes bounds what may wait for one node; beyond it pushes to that node
	// are dropped and counted (the stored chats stay for offline delivery).
	maxPendingBytes = 32 << 20
)

// Wrap returns the cluster stage of the delivery seam around next (the local stage):
// every push goes to next for this node's connections, and to each other node that the
// presence directory says has receivers, as one item per node in that node's outbox.
// Deliver never waits on the bus: a flusher per node publishes the outbox in batches.
func (n *Node) Wrap(next router.Deliverer) router.Deliverer { return &stage{n: n, next: next} }

type stage struct {
	n    *Node
	next router.Deliverer
}

var _ router.Deliverer = (*stage)(nil)

// Deliver implements router.Deliverer.
func (s *stage) Deliver(ctx context.Context, env router.Envelope) (router.Outcome, error) {
	out, err := s.next.Deliver(ctx, env)
	if err != nil {
		return out, err
	}
	n := s.n
	var one string               // the only remote node, while there is one
	var oneRecv []string         // its receivers
	var many map[string][]string // node → receivers, once there are two
	remote := 0
	for _, u := range env.Receivers {
		n.dir.nodes(u, func(node string, conns int) {
			remote += conns
			switch {
			case many != nil:
				many[node] = append(many[node], u)
			case one == "" || one == node:
				one, oneRecv = node, append(oneRecv, u)
			default:
				many = map[string][]string{one: oneRecv, node: {u}}
			}
		})
	}
	if one == "" {
		return out, nil
	}
	it := item{Kind: env.Kind, Reason: env.Reason}
	switch env.Kind {
	case router.KindChat:
		p, err := router.ChatPacket(env)
		if err != nil {
			return out, fmt.Errorf("encode chat: %w", err)
		}
		it.Cmd, it.Body = int(p.Cmd), p.Body
	case router.KindNotice:
		it.Cmd, it.Body = int(env.Notice.Cmd), env.Notice.Body
	}
	if many == nil {
		it.Receivers = oneRecv
		n.enqueue(one, it)
	} else {
		for node, recv := range many {
			it.Receivers = recv
			n.enqueue(node, it)
		}
	}
	out.Connections += remote
	return out, nil
}

// outbox holds the items waiting for one node, and its flusher.
type outbox struct {
	subject string
	wake    chan struct{}

	mu   sync.Mutex
	buf  []byte // encoded items
	ends []int  // offset after each item in buf
}

func (n *Node) outbox(node string) *outbox {
	n.outMu.Lock()
	defer n.outMu.Unlock()
	ob := n.outboxes[node]
	if ob == nil {
		ob = &outbox{subject: subjDeliver(node), wake: make(chan struct{}, 1)}
		n.outboxes[node] = ob
		n.wg.Add(1)
		go n.flusher(ob)
	}
	return ob
}

// enqueue adds an item to node's outbox; it never blocks.
func (n *Node) enqueue(node string, it item) {
	ob := n.outbox(node)
	ob.mu.Lock()
	if len(ob.buf) > maxPendingBytes {
		ob.mu.Unlock()
		n.stats.dropped.Add(1)
		return
	}
	ob.buf = appendItem(ob.buf, it)
	ob.ends = append(ob.ends, len(ob.buf))
	ob.mu.Unlock()
	n.stats.items.Add(1)
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

// flusher publishes ob's items: whatever accumulated while the last batch was being
// published goes in the next one, so batches grow with the load.
func (n *Node) flusher(ob *outbox) {
	defer n.wg.Done()
	for {
		select {
		case <-ob.wake:
			n.flush(ob)
		case <-n.stopped:
			return
		}
	}
}

func (n *Node) flush(ob *outbox) {
	ob.mu.Lock()
	buf, ends := ob.buf, ob.ends
	ob.buf, ob.ends = nil, nil
	ob.mu.Unlock()
	start := 0
	for i, end := range ends {
		// Cut at item boundaries, at most maxBatchBytes per message (one larger item
		// goes alone).
		if i+1 < len(ends) && ends[i+1]-start <= maxBatchBytes {
			continue
		}
		if err := n.bus.nc.Publish(ob.subject, buf[start:end]); err != nil {
			n.log.Warn("cluster: deliveries not published", "subject", ob.subject, "err", err)
			n.stats.dropped.Add(1)
		} else {
			n.stats.published.Add(1)
			n.stats.bytes.Add(uint64(end - start))
		}
		start = end
	}
}

// flushAll publishes what is queued for every node (at stop).
func (n *Node) flushAll() {
	n.outMu.Lock()
	obs := make([]*outbox, 0, len(n.outboxes))
	for _, ob := range n.outboxes {
		obs = append(obs, ob)
	}
	n.outMu.Unlock()
	for _, ob := range obs {
		n.flush(ob)
	}
}

// onDeliver delivers another node's batch to this node's connections.
func (n *Node) onDeliver(m *nats.Msg) {
	err := decodeBatch(m.Data, func(it item) {
		n.stats.received.Add(1)
		env := router.Envelope{Kind: router.KindNotice, Notice: packet.Packet{Cmd: packet.Cmd(it.Cmd), Body: it.Body},
			Receivers: it.Receivers}
		if it.Kind == router.KindKick {
			env = router.Envelope{Kind: router.KindKick, Reason: it.Reason, Receivers: it.Receivers}
		}
		if _, err := n.local.Deliver(context.Background(), env); err != nil {
			n.log.Warn("cluster: delivery from another node failed", "err", err)
		}
	})
	if err != nil {
		n.stats.malformed.Add(1)
		n.log.Warn("cluster: malformed delivery batch", "subject", m.Subject, "bytes", len(m.Data), "err", err)
	}
}
