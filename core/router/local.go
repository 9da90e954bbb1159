package router

import (
	"context"
	"fmt"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
)

// Local is the innermost stage of the delivery seam: it queues pushes to the connections
// of this node. It never blocks (a connection's queue is bounded; a slow consumer is
// disconnected by the transport).
type Local struct {
	Registry *session.Registry
}

var _ Deliverer = (*Local)(nil)

// Deliver implements Deliverer.
func (l *Local) Deliver(_ context.Context, env Envelope) (Outcome, error) {
	var p packet.Packet
	switch env.Kind {
	case KindChat:
		var err error
		if p, err = ChatPacket(env); err != nil {
			return Outcome{}, fmt.Errorf("encode chat: %w", err)
		}
	case KindNotice:
		p = env.Notice
	case KindKick:
		return Outcome{Connections: l.kick(env)}, nil
	default:
		return Outcome{}, fmt.Errorf("deliver: unknown envelope kind %d", env.Kind)
	}
	var out Outcome
	l.Registry.EachConn(env.Receivers, func(c session.Conn) {
		if c.ID() != env.SkipConn && c.Send(p) == nil {
			out.Connections++
		}
	})
	return out, nil
}

// kick closes the receivers' connections and returns how many it closed.
func (l *Local) kick(env Envelope) int {
	n := 0
	for _, u := range env.Receivers {
		for _, c := range l.Registry.Conns(u, nil) {
			if c.ID() != env.SkipConn {
				c.Close(env.Reason)
				n++
			}
		}
	}
	return n
}
