package cluster

import (
	"encoding/json"
	"sync"

	"github.com/timgw/timgw/core/session"
)

// Presence and membership messages are JSON: they are small and rare next to deliveries,
// and readable with `nats sub 'timgw.>'`.

// userState is one user's presence on one node.
type userState struct {
	ID     string `json:"i"`
	Conns  int    `json:"c"` // connections on the node; 0: went offline there
	Nick   string `json:"k,omitempty"`
	Avatar string `json:"a,omitempty"`
}

// presenceMsg is a node's presence: its changes since Seq-1 (on timgw.presence), or all
// of it as of Seq (a snapshot, the answer on timgw.node.<id>.sync).
type presenceMsg struct {
	Node  string      `json:"n"`
	Epoch uint64      `json:"e"`
	Seq   uint64      `json:"s"`
	Users []userState `json:"u"`
	Info  *nodeInfo   `json:"info,omitempty"` // snapshots only
}

// heartbeat says a node is alive, and the seq of its last presence change.
type heartbeat struct {
	Node  string   `json:"n"`
	Epoch uint64   `json:"e"`
	Seq   uint64   `json:"s"`
	Info  nodeInfo `json:"info"`
	Bye   bool     `json:"bye,omitempty"` // the node is stopping: drop it now
}

// nodeInfo describes a node in admin status.
type nodeInfo struct {
	Addr    string `json:"addr"`
	Started int64  `json:"started"` // ms since epoch
	Version string `json:"version"`
	Users   int    `json:"users"`
	Conns   int    `json:"conns"`
}

// membership is a group membership change made on a node.
type membership struct {
	Node   string `json:"n"`
	Group  string `json:"g"`
	Name   string `json:"name,omitempty"`
	User   string `json:"u"`
	Joined bool   `json:"j"`
}

// localPresence is this node's own presence as the other nodes learn it: the registry's
// observer records every change here, and a flusher publishes them in sequenced batches.
type localPresence struct {
	mu      sync.Mutex
	users   map[string]userState // online users of this node
	pending []userState          // changes not yet published
	seq     uint64               // of the last published batch
	conns   int
	wake    chan struct{}
}

func newLocalPresence() *localPresence {
	return &localPresence{users: make(map[string]userState), wake: make(chan struct{}, 1)}
}

// record is the registry observer's Presence (under the user's shard lock: it must be
// quick and never block).
func (l *localPresence) record(user string, conns int, p session.Profile) {
	st := userState{ID: user, Conns: conns, Nick: p.Nick, Avatar: p.Avatar}
	l.mu.Lock()
	if old, ok := l.users[user]; ok {
		l.conns -= old.Conns
	}
	if conns > 0 {
		l.users[user] = st
		l.conns += conns
	} else {
		delete(l.users, user)
	}
	l.pending = append(l.pending, st)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// take returns the pending changes as the next sequenced batch (nil: none).
func (l *localPresence) take() ([]userState, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil, l.seq
	}
	p := l.pending
	l.pending = nil
	l.seq++
	return p, l.seq
}

// snapshot returns every online user and the seq it is current as of. Changes pending
// publication are already in it; applying them again later does no harm (counts are
// absolute).
func (l *localPresence) snapshot() ([]userState, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]userState, 0, len(l.users))
	for _, u := range l.users {
		out = append(out, u)
	}
	return out, l.seq
}

func (l *localPresence) counts() (seq uint64, users, conns int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, len(l.users), l.conns
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return b
}
