// Package session keeps who is online where: the connections of every logged-in user,
// the users the gateway has seen, and group membership. It is the one place the router
// looks up receivers. All methods are safe for concurrent use.
package session

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

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

// user is kept small: one exists per online user. profile is nil while both its
// fields are empty, groups until the first join.
type user struct {
	profile *Profile
	conns   []Conn
	groups  map[string]struct{}
}

// nick and avatar read the profile.
func (u *user) nick() string {
	if u.profile == nil {
		return ""
	}
	return u.profile.Nick
}

func (u *user) avatar() string {
	if u.profile == nil {
		return ""
	}
	return u.profile.Avatar
}

// join records groupID among u's groups.
func (u *user) join(groupID string) {
	if u.groups == nil {
		u.groups = make(map[string]struct{})
	}
	u.groups[groupID] = struct{}{}
}

// userShard maps user ids to their entries. An entry is a *user, or, for the common
// user whose whole state is one connection (no profile, no group), that Conn itself, or
// known{} for a user seen before who has nothing else: no allocation per such user.
type userShard struct {
	mu    sync.RWMutex
	users map[string]any
}

// known is the entry of a user with no connection, no profile and no group.
type known struct{}

// full returns id's entry as a *user, creating it or expanding a compact entry. The
// caller holds s.mu for writing.
func (s *userShard) full(id string) *user {
	var u *user
	switch v := s.users[id].(type) {
	case *user:
		return v
	case Conn:
		u = &user{conns: []Conn{v}}
	default:
		u = &user{}
	}
	s.users[id] = u
	return u
}

// entry reads an entry: its *user when it is a full one, else the connection of a
// compact one (nil for known{}); ok is false for an unknown user.
func entry(v any) (u *user, one Conn, ok bool) {
	switch v := v.(type) {
	case *user:
		return v, nil, true
	case Conn:
		return nil, v, true
	case known:
		return nil, nil, true
	}
	return nil, nil, false
}

// connCount is the number of connections of an entry.
func connCount(v any) int {
	u, one, _ := entry(v)
	switch {
	case u != nil:
		return len(u.conns)
	case one != nil:
		return 1
	}
	return 0
}

type groupShard struct {
	mu     sync.RWMutex
	groups map[string]*group
}

type group struct {
	name    string
	members map[string]struct{}
	// view is a read-only copy of members' keys, built by the first MembersView after a
	// change (under the shard's read lock) and dropped by every change (under its write
	// lock), so that a group's chats share one receivers slice until its membership
	// changes.
	view atomic.Pointer[[]string]
}

// Registry is the gateway's table of users, connections and groups.
type Registry struct {
	seed   maphash.Seed
	users  [shardCount]userShard
	groups [shardCount]groupShard
	obs    atomic.Pointer[observerBox]
}

// Observer is told of changes made through Bind, Unbind, Join and Leave (the changes
// of this node), so that a cluster can tell the other nodes. Changes applied with
// Remember and Apply (the other nodes' changes) are not reported.
type Observer interface {
	// Presence says userID now has conns connections here (0: offline here), with its
	// profile. Called from many goroutines, under the user's shard lock, so that the
	// calls for one user come in the order of the changes: it must not block or call
	// back into the registry.
	Presence(userID string, conns int, p Profile)
	// Membership says userID joined (or left) groupID, named name. Called from many
	// goroutines, after the change.
	Membership(groupID, name, userID string, joined bool)
}

type observerBox struct{ o Observer }

// SetObserver sets the observer of this node's changes (nil: none).
func (r *Registry) SetObserver(o Observer) {
	if o == nil {
		r.obs.Store(nil)
		return
	}
	r.obs.Store(&observerBox{o})
}

func (r *Registry) observer() Observer {
	if b := r.obs.Load(); b != nil {
		return b.o
	}
	return nil
}

// profileOf returns the profile of entry v.
func profileOf(v any) Profile {
	if u, _, _ := entry(v); u != nil && u.profile != nil {
		return *u.profile
	}
	return Profile{}
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{seed: maphash.MakeSeed()}
	for i := range r.users {
		r.users[i].users = make(map[string]any)
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
	o := r.observer()
	if o == nil {
		return s.bind(userID, c, p)
	}
	before := connCount(s.users[userID])
	first = s.bind(userID, c, p)
	if v := s.users[userID]; connCount(v) != before {
		o.Presence(userID, connCount(v), profileOf(v))
	}
	return first
}

// bind is Bind under the shard's lock.
func (s *userShard) bind(userID string, c Conn, p Profile) (first bool) {
	if p.Nick == "" && p.Avatar == "" {
		switch v := s.users[userID].(type) {
		case nil, known:
			s.users[userID] = c // compact: the user is this connection
			return true
		case Conn:
			if v.ID() == c.ID() {
				return false
			}
		}
	}
	u := s.full(userID)
	if p.Nick != "" || p.Avatar != "" {
		if u.profile == nil {
			u.profile = &Profile{}
		}
		if p.Nick != "" {
			u.profile.Nick = p.Nick
		}
		if p.Avatar != "" {
			u.profile.Avatar = p.Avatar
		}
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
	o := r.observer()
	if o == nil {
		return s.unbind(userID, c)
	}
	before := connCount(s.users[userID])
	last = s.unbind(userID, c)
	if v := s.users[userID]; connCount(v) != before {
		o.Presence(userID, connCount(v), profileOf(v))
	}
	return last
}

// Remember records userID, known on another node, with its profile: it is listed
// among the users (offline here) from then on. Not reported to the observer.
func (r *Registry) Remember(userID string, p Profile) {
	s := r.userShard(userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.users[userID]
	if !ok && p == (Profile{}) {
		s.users[userID] = known{}
		return
	}
	if p == (Profile{}) || profileOf(v) == p {
		return
	}
	u := s.full(userID)
	u.profile = &p
}

// unbind is Unbind under the shard's lock.
func (s *userShard) unbind(userID string, c Conn) (last bool) {
	u, one, _ := entry(s.users[userID])
	if one != nil {
		if one.ID() != c.ID() {
			return false
		}
		s.users[userID] = known{}
		return true
	}
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
	if u, one, _ := entry(s.users[userID]); u != nil {
		buf = append(buf, u.conns...)
	} else if one != nil {
		buf = append(buf, one)
	}
	s.mu.RUnlock()
	return buf
}

// EachConn calls fn with every connection of every user in userIDs, the way Conns would
// one user at a time, but users of one shard that follow each other in userIDs (a
// MembersView is ordered so) are looked up under one read lock. fn runs with no lock
// held, so it may call the registry.
func (r *Registry) EachConn(userIDs []string, fn func(Conn)) {
	var buf [64]Conn
	si := -1
	for i := 0; i < len(userIDs); {
		if si < 0 {
			si = r.shard(userIDs[i])
		}
		s := &r.users[si]
		conns := buf[:0]
		s.mu.RLock()
		for {
			if u, one, _ := entry(s.users[userIDs[i]]); u != nil {
				conns = append(conns, u.conns...)
			} else if one != nil {
				conns = append(conns, one)
			}
			i++
			if i == len(userIDs) {
				break
			}
			if next := r.shard(userIDs[i]); next != si || len(conns) > len(buf)-8 {
				si = next
				break
			}
		}
		s.mu.RUnlock()
		for j, c := range conns {
			fn(c)
			conns[j] = nil
		}
	}
}

// ConnCount returns how many connections userID has.
func (r *Registry) ConnCount(userID string) int {
	s := r.userShard(userID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return connCount(s.users[userID])
}

// Online reports whether userID has a connection.
func (r *Registry) Online(userID string) bool { return r.ConnCount(userID) > 0 }

// Known reports whether userID has ever logged in since the gateway started.
func (r *Registry) Known(userID string) bool {
	s := r.userShard(userID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.users[userID]
	return ok
}

// User describes userID, or returns false when it was never seen.
func (r *Registry) User(userID string) (packet.User, bool) {
	s := r.userShard(userID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.users[userID]
	if !ok {
		return packet.User{}, false
	}
	return describe(userID, v), true
}

// describe describes the entry v of user id.
func describe(id string, v any) packet.User {
	u, _, _ := entry(v)
	if u == nil {
		u = &user{} // a compact entry: no profile, no group
	}
	pu := packet.User{UserID: id, Nick: u.nick(), Avatar: u.avatar(),
		Status: "offline", Friends: []string{}, Groups: make([]string, 0, len(u.groups))}
	if connCount(v) > 0 {
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
		for id, v := range s.users {
			online := connCount(v) > 0
			if f == FilterAll || (f == FilterOnline) == online {
				out = append(out, describe(id, v))
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
		for _, v := range s.users {
			if connCount(v) > 0 {
				online++
			}
			u, one, _ := entry(v)
			if one != nil {
				byProtocol[one.Protocol()]++
			} else if u != nil {
				for _, c := range u.conns {
					byProtocol[c.Protocol()]++
				}
			}
		}
		s.mu.RUnlock()
	}
	return online, byProtocol
}

// Join adds userID to groupID, creating the group. It reports whether the user was not a
// member before.
func (r *Registry) Join(groupID, name, userID string) (added bool) {
	added = r.join(groupID, name, userID)
	if o := r.observer(); o != nil && added {
		o.Membership(groupID, name, userID, true)
	}
	return added
}

// Apply applies a membership change made on another node: like Join or Leave, but not
// reported to the observer.
func (r *Registry) Apply(groupID, name, userID string, joined bool) {
	if joined {
		r.join(groupID, name, userID)
	} else {
		r.leave(groupID, userID)
	}
}

func (r *Registry) join(groupID, name, userID string) (added bool) {
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
		g.view.Store(nil)
		added = true
	}
	gs.mu.Unlock()

	us := r.userShard(userID)
	us.mu.Lock()
	us.full(userID).join(groupID)
	us.mu.Unlock()
	return added
}

// Leave removes userID from groupID. It reports whether it was a member.
func (r *Registry) Leave(groupID, userID string) (removed bool) {
	removed = r.leave(groupID, userID)
	if o := r.observer(); o != nil && removed {
		o.Membership(groupID, "", userID, false)
	}
	return removed
}

func (r *Registry) leave(groupID, userID string) (removed bool) {
	gs := r.groupShard(groupID)
	gs.mu.Lock()
	if g := gs.groups[groupID]; g != nil {
		if _, ok := g.members[userID]; ok {
			delete(g.members, userID)
			g.view.Store(nil)
			removed = true
		}
	}
	gs.mu.Unlock()
	us := r.userShard(userID)
	us.mu.Lock()
	if u, ok := us.users[userID].(*user); ok {
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

// MembersView returns the members of groupID as a slice shared by every caller until the
// membership changes: callers must not modify it (nor append to it). It reports whether
// the group exists. A group's chats cost one copy of its members per membership change,
// not one per chat.
func (r *Registry) MembersView(groupID string) ([]string, bool) {
	gs := r.groupShard(groupID)
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	g := gs.groups[groupID]
	if g == nil {
		return nil, false
	}
	if v := g.view.Load(); v != nil {
		return *v, true
	}
	v := r.byUserShard(g.members)
	g.view.CompareAndSwap(nil, &v)
	return v, true
}

// byUserShard lists members ordered by user shard (a counting sort), so that EachConn
// looks them up one shard at a time.
func (r *Registry) byUserShard(members map[string]struct{}) []string {
	ids := make([]string, 0, len(members))
	shards := make([]uint8, 0, len(members))
	var start [shardCount + 1]int
	for m := range members {
		k := r.shard(m)
		ids = append(ids, m)
		shards = append(shards, uint8(k))
		start[k+1]++
	}
	for k := 1; k <= shardCount; k++ {
		start[k] += start[k-1]
	}
	v := make([]string, len(ids))
	for i, m := range ids {
		k := shards[i]
		v[start[k]] = m
		start[k]++
	}
	return v
}

// MemberCount returns how many members groupID has (0 when it does not exist), without
// copying them.
func (r *Registry) MemberCount(groupID string) int {
	gs := r.groupShard(groupID)
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	if g := gs.groups[groupID]; g != nil {
		return len(g.members)
	}
	return 0
}

// MembersPage returns up to limit members of groupID whose ids sort after after, in
// byte order, with the group's member count; next is the id to pass as after for the
// following page ("" on the last page). ok is false when the group does not exist. A
// page costs one pass over the members, keeping only the page, never a copy of them all.
func (r *Registry) MembersPage(groupID, after string, limit int) (page []string, total int, next string, ok bool) {
	if limit <= 0 {
		return nil, 0, "", false
	}
	gs := r.groupShard(groupID)
	gs.mu.RLock()
	g := gs.groups[groupID]
	if g == nil {
		gs.mu.RUnlock()
		return nil, 0, "", false
	}
	total = len(g.members)
	// Keep the limit+1 smallest ids above after, sorted: limit+1 tells whether a page
	// follows.
	keep := make([]string, 0, min(limit+1, total))
	for m := range g.members {
		if m <= after {
			continue
		}
		if len(keep) == limit+1 && m >= keep[limit] {
			continue
		}
		i, _ := slices.BinarySearch(keep, m)
		if len(keep) == limit+1 {
			keep = keep[:limit]
		}
		keep = slices.Insert(keep, i, m)
	}
	gs.mu.RUnlock()
	if len(keep) > limit {
		keep = keep[:limit]
		next = keep[limit-1]
	}
	return keep, total, next, true
}

// Groups returns the groups userID belongs to, sorted.
func (r *Registry) Groups(userID string) []string {
	us := r.userShard(userID)
	us.mu.RLock()
	defer us.mu.RUnlock()
	u, _, ok := entry(us.users[userID])
	if !ok {
		return nil
	}
	if u == nil {
		return []string{}
	}
	out := make([]string, 0, len(u.groups))
	for g := range u.groups {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}
