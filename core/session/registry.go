// Package session keeps who is online where: the connections of every logged-in user,
// the users the gateway has seen, and group membership. It is the one place the router
// looks up receivers. All methods are safe for concurrent use.
package session

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/timgw/timgw/core/packet"
)

// Conn is a logged-in connection as the registry needs it.
type Conn interface {
	// ID is unique among the gateway's connections.
	ID() uint64
	// Send queues a packet to the connection; it never blocks.
	Send(p packet.Packet) error
	// Close closes the connection, logging reason.
	Close(reason string)
	// Protocol names the wire protocol: tcp, ws, tls+tcp, wss, ...
	Protocol() string
}

const shardCount = 64

// Profile is what the gateway knows of a user besides its connections.
type Profile struct {
	Nick   string
	Avatar string
}

type user struct {
	profile Profile
	conns   []Conn
	groups  map[string]struct{}
}

type userShard struct {
	mu    sync.RWMutex
	users map[string]*user
}

type groupShard struct {
	mu     sync.RWMutex
	groups map[string]*group
}

type group struct {
	name    string
	members map[string]struct{}
}

// Registry is the gateway's table of users, connections and groups.
type Registry struct {
	seed   maphash.Seed
	users  [shardCount]userShard
	groups [shardCount]groupShard
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{seed: maphash.MakeSeed()}
	for i := range r.users {
		r.users[i].users = make(map[string]*user)
		r.groups[i].groups = make(map[string]*group)
	}
	return r
}

func (r *Registry) shard(key string) int { return int(maphash.String(r.seed, key) % shardCount) }

func (r *Registry) userShard(id string) *userShard { return &r.users[r.shard(id)] }

func (r *Registry) groupShard(id string) *groupShard { return &r.groups[r.shard(id)] }

// Bind records c as a connection of userID and updates its profile. It reports whether
// the user was offline before (c is its first connection).
func (r *Registry) Bind(userID string, c Conn, p Profile) (first bool) {
	s := r.userShard(userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		u = &user{groups: make(map[string]struct{})}
		s.users[userID] = u
	}
	if p.Nick != "" {
		u.profile.Nick = p.Nick
	}
	if p.Avatar != "" {
		u.profile.Avatar = p.Avatar
	}
	for _, x := range u.conns {
		if x.ID() == c.ID() {
			return false
		}
	}
	first = len(u.conns) == 0
	u.conns = append(u.conns, c)
	return first
}

// Unbind removes c from userID's connections. It reports whether that was the user's
// last connection (the user went offline).
func (r *Registry) Unbind(userID string, c Conn) (last bool) {
	s := r.userShard(userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		return false
	}
	i := slices.IndexFunc(u.conns, func(x Conn) bool { return x.ID() == c.ID() })
	if i < 0 {
		return false
	}
	u.conns = slices.Delete(u.conns, i, i+1)
	return len(u.conns) == 0
}

// Conns appends the connections of userID to buf and returns it.
func (r *Registry) Conns(userID string, buf []Conn) []Conn {
	s := r.userShard(userID)
	s.mu.RLock()
	if u := s.users[userID]; u != nil {
		buf = append(buf, u.conns...)
	}
	s.mu.RUnlock()
	return buf
}

// ConnCount returns how many connections userID has.
func (r *Registry) ConnCount(userID string) int {
	s := r.userShard(userID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if u := s.users[userID]; u != nil {
		return len(u.conns)
	}
	return 0
}

// Online reports whether userID has a connection.
func (r *Registry) Online(userID string) bool { return r.ConnCount(userID) > 0 }

// Known reports whether userID has ever logged in since the gateway started.
func (r *Registry) Known(userID string) bool {
	s := r.userShard(userID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.users[userID] != nil
}

// User describes userID, or returns false when it was never seen.
func (r *Registry) User(userID string) (packet.User, bool) {
	s := r.userShard(userID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[userID]
	if u == nil {
		return packet.User{}, false
	}
	return describe(userID, u), true
}

func describe(id string, u *user) packet.User {
	pu := packet.User{UserID: id, Nick: u.profile.Nick, Avatar: u.profile.Avatar,
		Status: "offline", Friends: []string{}, Groups: make([]string, 0, len(u.groups))}
	if len(u.conns) > 0 {
		pu.Status = "online"
	}
	for g := range u.groups {
		pu.Groups = append(pu.Groups, g)
	}
	slices.Sort(pu.Groups)
	return pu
}

// Filter selects users in Users.
type Filter int

// Filters, numbered like cmd 17's type.
const (
	FilterOnline  Filter = 0
	FilterOffline Filter = 1
	FilterAll     Filter = 2
)

// Users lists the users the filter selects, sorted by id.
func (r *Registry) Users(f Filter) []packet.User {
	var out []packet.User
	for i := range r.users {
		s := &r.users[i]
		s.mu.RLock()
		for id, u := range s.users {
			online := len(u.conns) > 0
			if f == FilterAll || (f == FilterOnline) == online {
				out = append(out, describe(id, u))
			}
		}
		s.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b packet.User) int {
		switch {
		case a.UserID < b.UserID:
			return -1
		case a.UserID > b.UserID:
			return 1
		}
		return 0
	})
	return out
}

// Counts returns the number of online users and of their connections by protocol.
func (r *Registry) Counts() (online int, byProtocol map[string]int) {
	byProtocol = make(map[string]int)
	for i := range r.users {
		s := &r.users[i]
		s.mu.RLock()
		for _, u := range s.users {
			if len(u.conns) > 0 {
				online++
			}
			for _, c := range u.conns {
				byProtocol[c.Protocol()]++
			}
		}
		s.mu.RUnlock()
	}
	return online, byProtocol
}

// Join adds userID to groupID, creating the group. It reports whether the user was not a
// member before.
func (r *Registry) Join(groupID, name, userID string) (added bool) {
	gs := r.groupShard(groupID)
	gs.mu.Lock()
	g := gs.groups[groupID]
	if g == nil {
		g = &group{name: name, members: make(map[string]struct{})}
		gs.groups[groupID] = g
	}
	if g.name == "" {
		g.name = name
	}
	if _, ok := g.members[userID]; !ok {
		g.members[userID] = struct{}{}
		added = true
	}
	gs.mu.Unlock()

	us := r.userShard(userID)
	us.mu.Lock()
	u := us.users[userID]
	if u == nil {
		u = &user{groups: make(map[string]struct{})}
		us.users[userID] = u
	}
	u.groups[groupID] = struct{}{}
	us.mu.Unlock()
	return added
}

// Leave removes userID from groupID. It reports whether it was a member.
func (r *Registry) Leave(groupID, userID string) (removed bool) {
	gs := r.groupShard(groupID)
	gs.mu.Lock()
	if g := gs.groups[groupID]; g != nil {
		if _, ok := g.members[userID]; ok {
			delete(g.members, userID)
			removed = true
		}
	}
	gs.mu.Unlock()
	us := r.userShard(userID)
	us.mu.Lock()
	if u := us.users[userID]; u != nil {
		delete(u.groups, groupID)
	}
	us.mu.Unlock()
	return removed
}

// IsMember reports whether userID belongs to groupID.
func (r *Registry) IsMember(groupID, userID string) bool {
	gs := r.groupShard(groupID)
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	g := gs.groups[groupID]
	if g == nil {
		return false
	}
	_, ok := g.members[userID]
	return ok
}

// Group describes groupID, or returns false when it does not exist.
func (r *Registry) Group(groupID string) (packet.Group, bool) {
	gs := r.groupShard(groupID)
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	g := gs.groups[groupID]
	if g == nil {
		return packet.Group{}, false
	}
	return packet.Group{GroupID: groupID, Name: g.name}, true
}

// Members appends the members of groupID to buf, and reports whether the group exists.
func (r *Registry) Members(groupID string, buf []string) ([]string, bool) {
	gs := r.groupShard(groupID)
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	g := gs.groups[groupID]
	if g == nil {
		return buf, false
	}
	for m := range g.members {
		buf = append(buf, m)
	}
	return buf, true
}

// Groups returns the groups userID belongs to, sorted.
func (r *Registry) Groups(userID string) []string {
	us := r.userShard(userID)
	us.mu.RLock()
	defer us.mu.RUnlock()
	u := us.users[userID]
	if u == nil {
		return nil
	}
	out := make([]string, 0, len(u.groups))
	for g := range u.groups {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}
