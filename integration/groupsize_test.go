package integration

import (
	"encoding/json"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestLargeGroupNotices checks groups.notice_max_members: members are told of joins and
// leaves (cmd 9, cmd 10) while the group is at most that size, and not above it, so that
// filling a group stays linear; a reload to 0 brings the notices back at any size.
func TestLargeGroupNotices(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "groupsize", gwConfig{})
	cfg.Set("groups.notice_max_members", 2)
	cfg.Write(t, byRename)
	g := startTestGateway(t, "groupsize", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)

	group := uid("big")
	alice, bob, carol, dave := uid("gs-alice"), uid("gs-bob"), uid("gs-carol"), uid("gs-dave")
	a := g.login(t, epTCP, alice)
	b := g.login(t, epWS, bob)
	c := g.login(t, epTCP, carol)
	// A join's notices go out after its answer: a heartbeat barrier on the joiner's
	// connection (mustSync) waits for them before the next join.
	mustJoin(t, a, group, "alice")
	mustSync(t, a, "alice")
	mustJoin(t, b, group, "bob") // 2 members: at the limit, alice is told
	mustSync(t, b, "bob")
	mustNotice(t, a, packet.CmdJoinGroupNotify, bob, group, "alice told of bob")

	mustJoin(t, c, group, "carol") // 3 members: above the limit, nobody is told
	mustSync(t, c, "carol")
	mustNotGet(t, a, packet.CmdJoinGroupNotify, "alice after carol joined")
	mustNotGet(t, b, packet.CmdJoinGroupNotify, "bob after carol joined")

	c.Close() // carol goes offline: no leave notice above the limit either
	mustNotGet(t, a, packet.CmdExitGroupNotify, "alice after carol left")
	mustNotGet(t, b, packet.CmdExitGroupNotify, "bob after carol left")

	cfg.Set("groups.notice_max_members", 0)
	if r := cfg.ApplyByAPI(t, adm, byRename); !r.hasChange("groups") {
		t.Fatalf("the reload did not apply groups: %s", r)
	}
	d := g.login(t, epWS, dave)
	mustJoin(t, d, group, "dave") // 0: notices at any size again
	mustNotice(t, a, packet.CmdJoinGroupNotify, dave, group, "alice told of dave")
	mustNotice(t, b, packet.CmdJoinGroupNotify, dave, group, "bob told of dave")
}

// TestGroupMembersPaging walks GET /api/v1/groups/{id}/members in pages, and checks
// that groups.members_page_size caps a page and is reloaded live.
func TestGroupMembersPaging(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "grouppage", gwConfig{})
	g := startTestGateway(t, "grouppage", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	api := g.api(t, epHTTP)

	group := uid("paged")
	want := map[string]bool{}
	for range 5 {
		u := uid("gp-member")
		c := g.login(t, epTCP, u)
		mustJoin(t, c, group, u)
		want[u] = true
	}
	type page struct {
		Total   int      `json:"total"`
		Members []string `json:"members"`
		Next    string   `json:"next"`
	}
	get := func(path string) page {
		t.Helper()
		r, err := api.Get(path)
		if err != nil || r.Status != 200 {
			t.Fatalf("GET %s: %v %v", path, r, err)
		}
		var env struct {
			Code int  `json:"code"`
			Data page `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &env); err != nil || env.Code != int(packet.StatusOK) {
			t.Fatalf("GET %s: code %d (%v): %s", path, env.Code, err, r.Body)
		}
		return env.Data
	}
	seen := map[string]bool{}
	after, pages := "", 0
	for {
		p := get("/api/v1/groups/" + group + "/members?limit=2&after=" + after)
		pages++
		if p.Total != 5 || len(p.Members) > 2 {
			t.Fatalf("page %d: total %d, %d members: %+v", pages, p.Total, len(p.Members), p)
		}
		for _, m := range p.Members {
			if seen[m] || !want[m] {
				t.Fatalf("page %d lists %q (seen before: %v)", pages, m, seen[m])
			}
			seen[m] = true
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if len(seen) != 5 || pages != 3 {
		t.Fatalf("walked %d members in %d pages, want 5 in 3", len(seen), pages)
	}

	cfg.Set("groups.members_page_size", 3)
	if r := cfg.ApplyByAPI(t, adm, byRename); !r.hasChange("groups") {
		t.Fatalf("the reload did not apply groups: %s", r)
	}
	for _, path := range []string{"/api/v1/groups/" + group + "/members", "/api/v1/groups/" + group + "/members?limit=50"} {
		if p := get(path); len(p.Members) != 3 || p.Next == "" {
			t.Errorf("GET %s with members_page_size 3: %d members, next %q; want 3 and a next", path, len(p.Members), p.Next)
		}
	}
}

// TestOpenGroups checks groups.open: t-im's demo page logs in with ?username= and sends to
// group 100 without joining it, numeric fields as strings. An open group delivers such a
// chat to its members; every other group answers 10025, and a reload closes the group.
func TestOpenGroups(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "opengroups", gwConfig{})
	cfg.Set("groups.open", []any{"100", "lobby-*"})
	cfg.Write(t, byRename)
	g := startTestGateway(t, "opengroups", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)

	guest, member := uid("og-guest"), uid("og-member")
	m := g.login(t, epTCP, member)
	lobby := uid("lobby-")
	closed := uid("closed")
	for _, grp := range []string{"100", lobby, closed} {
		mustJoin(t, m, grp, "member")
	}
	// t-im's websocket.html: query login, then a group chat with string fields.
	c := dialURL(t, epWS.url(g.Addr, "/?username="+guest+"&password=123"))
	if _, err := c.ExpectStatus(packet.CmdLoginResp, packet.StatusLoginOK, wait); err != nil {
		t.Fatalf("query login: %v", err)
	}
	send := func(group string) (*timclient.Response, error) {
		return c.Request(packet.CmdChatReq, map[string]any{"cmd": "11", "from": guest, "groupId": group,
			"chatType": "1", "msgType": "0", "content": "hello " + group}, wait)
	}
	for _, grp := range []string{"100", lobby} {
		r, err := send(grp)
		mustAccepted(t, r, err)
		got := mustRecvChat(t, m, "the member of "+grp)
		if string(got.GroupID) != grp || string(got.From) != guest || got.Content != "hello "+grp {
			t.Errorf("the member of %s got %+v", grp, got)
		}
	}
	r, err := send(closed)
	mustCode(t, "a guest's chat to a group that is not open", r, err, packet.StatusNotGroupMember)
	mustNotGet(t, m, packet.CmdChatReq, "the member of the closed group")

	cfg.Set("groups.open", []any{})
	if res := cfg.ApplyByAPI(t, adm, byRename); !res.hasChange("groups") {
		t.Fatalf("the reload did not apply groups: %s", res)
	}
	r, err = send("100")
	mustCode(t, "a guest's chat to group 100 after it was closed", r, err, packet.StatusNotGroupMember)
}
