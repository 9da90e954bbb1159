package cluster

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
)

// directory is the presence of the OTHER nodes' users: user → (node, connections). An
// entry belongs to a node; dropping the node (lease expired, new epoch, goodbye) drops
// its entries. Safe for concurrent use.
type directory struct {
	seed   maphash.Seed
	shards [64]dirShard
}

type dirShard struct {
	mu    sync.RWMutex
	users map[string][]nodeCount
}

// nodeCount is one node's connections of a user.
type nodeCount struct {
	node  string
	conns int32
}

func newDirectory() *directory {
	d := &directory{seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].users = make(map[string][]nodeCount)
	}
	return d
}

func (d *directory) shard(user string) *dirShard {
	return &d.shards[maphash.String(d.seed, user)%uint64(len(d.shards))]
}

// set records that user has conns connections on node (0: none).
func (d *directory) set(user, node string, conns int) {
	s := d.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.users[user]
	i := slices.IndexFunc(list, func(nc nodeCount) bool { return nc.node == node })
	switch {
	case conns > 0 && i >= 0:
		list[i].conns = int32(conns)
	case conns > 0:
		s.users[user] = append(list, nodeCount{node, int32(conns)})
	case i >= 0 && len(list) == 1:
		delete(s.users, user)
	case i >= 0:
		s.users[user] = slices.Delete(list, i, i+1)
	}
}

// nodes calls fn for every node that has connections of user.
func (d *directory) nodes(user string, fn func(node string, conns int)) {
	s := d.shard(user)
	s.mu.RLock()
	list := s.users[user]
	var buf [4]nodeCount
	cp := append(buf[:0], list...)
	s.mu.RUnlock()
	for _, nc := range cp {
		fn(nc.node, int(nc.conns))
	}
}

// count is user's connections on the other nodes.
func (d *directory) count(user string) int {
	n := 0
	d.nodes(user, func(_ string, c int) { n += c })
	return n
}

// online lists the users with connections on other nodes.
func (d *directory) online() []string {
	var out []string
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.RLock()
		for u := range s.users {
			out = append(out, u)
		}
		s.mu.RUnlock()
	}
	return out
}

// View is the cluster-wide presence: this node's registry merged with the directory of
// the other nodes. It answers the command layer (cmd 17/18), the router (10001) and the
// HTTP API. Called from many goroutines.
type View struct {
	reg *session.Registry
	dir *directory
}

// Online reports whether userID has a connection on any node.
func (v *View) Online(userID string) bool {
	return v.reg.Online(userID) || v.dir.count(userID) > 0
}

// ConnCount is userID's connections on every node.
func (v *View) ConnCount(userID string) int {
	return v.reg.ConnCount(userID) + v.dir.count(userID)
}

// User describes userID as the whole cluster sees it.
func (v *View) User(userID string) (packet.User, bool) {
	u, ok := v.reg.User(userID)
	if ok && u.Status != "online" && v.dir.count(userID) > 0 {
		u.Status = "online"
	}
	return u, ok
}

// Users lists the users the filter selects, cluster-wide, sorted by id: every user known
// here (users of other nodes are remembered when they log in), with the status the
// directory gives.
func (v *View) Users(f session.Filter) []packet.User {
	all := v.reg.Users(session.FilterAll)
	out := all[:0]
	for _, u := range all {
		if u.Status != "online" && v.dir.count(u.UserID) > 0 {
			u.Status = "online"
		}
		if f == session.FilterAll || (f == session.FilterOnline) == (u.Status == "online") {
			out = append(out, u)
		}
	}
	return out
}
