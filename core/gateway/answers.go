package gateway

import (
	"sync"

	"github.com/timgw/timgw/core/packet"
)

// laterConn is a connection that can answer packets later without a worker waiting
// (transport.Conn): a stored chat's ack then comes from the store's callback while the
// connection's next chats go on their way (up to limits.pipelined_chats), and any other
// command waits until they are answered.
type laterConn interface {
	// Later says the answer to the packet being handled comes later; the connection
	// parks once limit answers are pending.
	Later(limit int)
	// Answered says one answer announced by Later was queued (any goroutine).
	Answered()
	// AfterAnswers reports whether answers are pending; then the packet being handled
	// is handed again after the last of them, and the caller returns at once.
	AfterAnswers() bool
}

// answers puts the answers to one connection's pipelined chats in the order the chats
// were read: each chat answered later takes a ticket, and its answer is sent only after
// the answers of every earlier ticket (a chat refused at once must not overtake one
// still being stored). Made at a connection's first pipelined chat.
type answers struct {
	mu    sync.Mutex
	next  uint32        // the ticket the next chat takes
	head  uint32        // the oldest ticket whose answer is not sent
	ready []readyAnswer // answers that wait for an earlier ticket's
}

type readyAnswer struct {
	ticket uint32
	p      packet.Packet
}

// idle reports whether no answer is outstanding: a chat may then be answered directly.
func (a *answers) idle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.head == a.next
}

// take returns the next ticket. Called from the connection's handler only.
func (a *answers) take() uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.next
	a.next++
	return t
}

// give records ticket t's answer p and sends, through send and in ticket order, every
// answer that no longer waits for an earlier one; it returns how many it sent. Sending
// happens under the lock, so that two callers cannot interleave their answers. Called
// from any goroutine.
func (a *answers) give(t uint32, p packet.Packet, send func(packet.Packet)) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t != a.head {
		a.ready = append(a.ready, readyAnswer{t, p})
		return 0
	}
	send(p)
	a.head++
	n := 1
	for len(a.ready) > 0 {
		i := a.find(a.head)
		if i < 0 {
			break
		}
		send(a.ready[i].p)
		a.head++
		n++
		last := len(a.ready) - 1
		a.ready[i] = a.ready[last]
		a.ready[last] = readyAnswer{}
		a.ready = a.ready[:last]
	}
	return n
}

// find returns the index in ready of ticket t's answer, or -1.
func (a *answers) find(t uint32) int {
	for i := range a.ready {
		if a.ready[i].ticket == t {
			return i
		}
	}
	return -1
}
