package session

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/timgw/timgw/core/packet"
)

type conn struct {
	id    uint64
	proto string
	mu    sync.Mutex
	got   []packet.Packet
}

func (c *conn) ID() uint64       { return c.id }
func (c *conn) Protocol() string { return c.proto }
func (c *conn) Close(string)     {}
func (c *conn) Send(p packet.Packet) error {
	c.mu.Lock()
	c.got = append(c.got, p)
	c.mu.Unlock()
	return nil
}

func TestBindUnbind(t *testing.T) {
	r := New()
	a1, a2 := &conn{id: 1, proto: "tcp"}, &conn{id: 2, proto: "ws"}
	steps := []struct {
		name      string
		do        func() bool
		want      bool
		wantConns int
	}{
		{"first connection", func() bool { return r.Bind("alice", a1, Profile{Nick: "A"}) }, true, 1},
		{"second connection", func() bool { return r.Bind("alice", a2, Profile{}) }, false, 2},
		{"bind twice is a no-op", func() bool { return r.Bind("alice", a2, Profile{}) }, false, 2},
		{"unbind one", func() bool { return r.Unbind("alice", a1) }, false, 1},
		{"unbind unknown conn", func() bool { return r.Unbind("alice", a1) }, false, 1},
		{"unbind last", func() bool { return r.Unbind("alice", a2) }, true, 0},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
		if n := r.ConnCount("alice"); n != s.wantConns {
			t.Fatalf("%s: %d connections, want %d", s.name, n, s.wantConns)
		}
	}
	u, ok := r.User("alice")
	if !ok || u.Status != "offline" || u.Nick != "A" {
		t.Fatalf("User(alice) = %+v, %v; want known, offline, nick A", u, ok)
	}
	if !r.Known("alice") || r.Known("nobody") {
		t.Fatal("Known is wrong")
	}
}

func TestUsersFilter(t *testing.T) {
	r := New()
	r.Bind("on1", &conn{id: 1}, Profile{})
	r.Bind("on2", &conn{id: 2}, Profile{})
	off := &conn{id: 3}
	r.Bind("off", off, Profile{})
	r.Unbind("off", off)
	ids := func(us []packet.User) string {
		s := ""
		for _, u := range us {
			s += u.UserID + ","
		}
		return s
	}
	tests := []struct {
		f    Filter
		want string
	}{
		{FilterOnline, "on1,on2,"},
		{FilterOffline, "off,"},
		{FilterAll, "off,on1,on2,"},
	}
	for _, tt := range tests {
		if got := ids(r.Users(tt.f)); got != tt.want {
			t.Errorf("Users(%d) = %s, want %s", tt.f, got, tt.want)
		}
	}
	online, by := r.Counts()
	if online != 2 || by[""] != 2 {
		t.Errorf("Counts = %d %v, want 2 online on 2 connections", online, by)
	}
}

func TestGroups(t *testing.T) {
	r := New()
	if !r.Join("g1", "Group One", "alice") || r.Join("g1", "", "alice") {
		t.Fatal("Join should report only the first join")
	}
	r.Join("g1", "", "bob")
	if !r.IsMember("g1", "bob") || r.IsMember("g1", "carol") || r.IsMember("g2", "bob") {
		t.Fatal("IsMember is wrong")
	}
	m, ok := r.Members("g1", nil)
	if !ok || len(m) != 2 {
		t.Fatalf("Members = %v, %v", m, ok)
	}
	if g, _ := r.Group("g1"); g.Name != "Group One" {
		t.Fatalf("group name %q", g.Name)
	}
	if gs := r.Groups("alice"); fmt.Sprint(gs) != "[g1]" {
		t.Fatalf("Groups(alice) = %v", gs)
	}
	if !r.Leave("g1", "alice") || r.Leave("g1", "alice") || r.IsMember("g1", "alice") || len(r.Groups("alice")) != 0 {
		t.Fatal("Leave is wrong")
	}
	if _, ok := r.Members("nope", nil); ok {
		t.Fatal("unknown group reported as existing")
	}
}

func TestConcurrentBindAndLookup(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				c := &conn{id: uint64(w*1000 + i)}
				u := fmt.Sprintf("u%d", i%50)
				r.Bind(u, c, Profile{})
				r.Join("g", "", u)
				_ = r.Conns(u, nil)
				r.Unbind(u, c)
			}
		}(w)
	}
	wg.Wait()
	if online, _ := r.Counts(); online != 0 {
		t.Fatalf("%d users still online", online)
	}
}

func BenchmarkConnsLookup(b *testing.B) {
	r := New()
	for i := 0; i < 10000; i++ {
		r.Bind(fmt.Sprintf("u%d", i), &conn{id: uint64(i)}, Profile{})
	}
	b.RunParallel(func(pb *testing.PB) {
		var buf [8]Conn
		i := 0
		for pb.Next() {
			_ = r.Conns("u4242", buf[:0])
			i++
		}
	})
}

func TestMembersPage(t *testing.T) {
	r := New()
	for i := range 25 {
		r.Join("big", "", fmt.Sprintf("u%02d", i))
	}
	if got := r.MemberCount("big"); got != 25 {
		t.Fatalf("MemberCount = %d, want 25", got)
	}
	if got := r.MemberCount("nope"); got != 0 {
		t.Fatalf("MemberCount(unknown) = %d, want 0", got)
	}
	tests := []struct {
		name      string
		after     string
		limit     int
		wantFirst string
		wantLen   int
		wantNext  string
	}{
		{"first page", "", 10, "u00", 10, "u09"},
		{"middle page", "u09", 10, "u10", 10, "u19"},
		{"last page", "u19", 10, "u20", 5, ""},
		{"exact fit", "u14", 10, "u15", 10, ""},
		{"past the end", "u24", 10, "", 0, ""},
		{"one per page", "u03", 1, "u04", 1, "u04"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, total, next, ok := r.MembersPage("big", tt.after, tt.limit)
			if !ok || total != 25 {
				t.Fatalf("ok=%v total=%d, want true 25", ok, total)
			}
			if len(page) != tt.wantLen || next != tt.wantNext {
				t.Fatalf("page=%v next=%q, want %d ids and next %q", page, next, tt.wantLen, tt.wantNext)
			}
			if tt.wantLen > 0 && page[0] != tt.wantFirst {
				t.Fatalf("page starts at %q, want %q", page[0], tt.wantFirst)
			}
			if !slices.IsSorted(page) {
				t.Fatalf("page %v is not sorted", page)
			}
		})
	}
	// Walking the pages visits every member once.
	seen := map[string]bool{}
	after := ""
	for {
		page, _, next, _ := r.MembersPage("big", after, 7)
		for _, m := range page {
			if seen[m] {
				t.Fatalf("member %s listed twice", m)
			}
			seen[m] = true
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(seen) != 25 {
		t.Fatalf("walked %d members, want 25", len(seen))
	}
	if _, _, _, ok := r.MembersPage("nope", "", 10); ok {
		t.Fatal("MembersPage of an unknown group reported ok")
	}
}

func TestMembersViewShared(t *testing.T) {
	r := New()
	r.Join("g", "", "a")
	r.Join("g", "", "b")
	v1, ok := r.MembersView("g")
	v2, _ := r.MembersView("g")
	if !ok || len(v1) != 2 {
		t.Fatalf("view %v ok=%v, want 2 members", v1, ok)
	}
	if &v1[0] != &v2[0] {
		t.Error("two views of an unchanged group do not share their slice")
	}
	r.Join("g", "", "c")
	v3, _ := r.MembersView("g")
	if len(v3) != 3 || len(v1) != 2 {
		t.Fatalf("after a join: new view %v, old view %v; want 3 and the old one untouched", v3, v1)
	}
	r.Leave("g", "a")
	v4, _ := r.MembersView("g")
	slices.Sort(v4)
	if fmt.Sprint(v4) != "[b c]" {
		t.Fatalf("after a leave: %v, want [b c]", v4)
	}
	if _, ok := r.MembersView("nope"); ok {
		t.Error("view of an unknown group reported ok")
	}
}

func BenchmarkMembersView10k(b *testing.B) {
	r := New()
	for i := range 10000 {
		r.Join("big", "", fmt.Sprintf("user-%05d", i))
	}
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			m, _ := r.Members("big", nil)
			_ = m
		}
	})
	b.Run("view", func(b *testing.B) {
		for b.Loop() {
			m, _ := r.MembersView("big")
			_ = m
		}
	})
}

// EachConn finds the same connections as Conns one user at a time, in the order of the
// users, whatever their order and however many connections each has.
func TestEachConnMatchesConns(t *testing.T) {
	r := New()
	var users []string
	id := uint64(0)
	for i := range 500 {
		u := fmt.Sprintf("user-%03d", i)
		users = append(users, u)
		r.Join("g", "", u)
		for range i % 4 { // 0 to 3 connections; some users have none
			id++
			r.Bind(u, &conn{id: id}, Profile{})
		}
		if i%50 == 0 { // a user with more connections than one lookup batch holds
			for range 70 {
				id++
				r.Bind(u, &conn{id: id}, Profile{})
			}
		}
	}
	view, _ := r.MembersView("g")
	for name, ids := range map[string][]string{
		"members view": view,
		"join order":   users,
		"reversed":     reversed(users),
		"unknown":      {"nobody", "user-001", "nobody-else"},
		"none":         nil,
	} {
		var want []uint64
		for _, u := range ids {
			for _, c := range r.Conns(u, nil) {
				want = append(want, c.ID())
			}
		}
		var got []uint64
		r.EachConn(ids, func(c Conn) { got = append(got, c.ID()) })
		if !slices.Equal(got, want) {
			t.Errorf("%s: EachConn found %d connections, Conns %d (or another order)", name, len(got), len(want))
		}
	}
	if len(view) != 500 {
		t.Fatalf("view has %d members, want 500", len(view))
	}
	seen := map[string]bool{}
	for _, u := range view {
		seen[u] = true
	}
	if len(seen) != 500 {
		t.Fatalf("view lists %d distinct members, want 500", len(seen))
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func BenchmarkEachConn10k(b *testing.B) {
	r := New()
	for i := range 10000 {
		u := fmt.Sprintf("user-%05d", i)
		r.Join("big", "", u)
		r.Bind(u, &conn{id: uint64(i)}, Profile{})
	}
	view, _ := r.MembersView("big")
	b.Run("Conns", func(b *testing.B) {
		n := 0
		for b.Loop() {
			var buf [8]Conn
			for _, u := range view {
				n += len(r.Conns(u, buf[:0]))
			}
		}
	})
	b.Run("EachConn", func(b *testing.B) {
		n := 0
		for b.Loop() {
			r.EachConn(view, func(Conn) { n++ })
		}
	})
}
