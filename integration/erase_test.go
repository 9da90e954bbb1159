package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestEraseUserCluster: DELETE /admin/users/{id} on node a erases a user connected to
// node b: b closes the user's connections, b's registry drops the user from its group
// at once (not at b's next restart), and the members on both nodes are told (cmd 10)
// while they stay connected.
func TestEraseUserCluster(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "erase", nil, "a", "b")
	c.start(t)
	c.waitMembers(t, c.ids, c.ids...)
	a, b := c.node("a"), c.node("b")
	bob, carol, dave, room := uid("ec-bob"), uid("ec-carol"), uid("ec-dave"), uid("ec-room")

	b1 := b.login(t, epTCP, bob)
	b2 := b.login(t, epWS, bob)
	mustJoin(t, b1, room, "bob")
	cc := a.login(t, epTCP, carol) // a member on the node that erases
	mustJoin(t, cc, room, "carol")
	dc := b.login(t, epWS, dave) // a member on bob's node
	mustJoin(t, dc, room, "dave")
	waitGroupMembers(t, a, room, bob, carol, dave)
	waitGroupMembers(t, b, room, bob, carol, dave)
	waitPresence(t, a, bob, true)
	waitPresence(t, a, dave, true)
	waitPresence(t, b, carol, true)

	api := timclient.NewAPI("http://"+a.Addr, "", nil)
	defer api.CloseIdle()
	r, err := api.Do(http.MethodDelete, "/admin/users/"+url.PathEscape(bob), nil, "X-Admin-Key", clusterAdminKey)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("DELETE /admin/users/%s on node a: %v %v", bob, r, err)
	}
	var res struct {
		Groups       []string `json:"groups"`
		Disconnected int      `json:"disconnected"`
	}
	if err := json.Unmarshal(r.Body, &res); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Groups, []string{room}) || res.Disconnected != 2 {
		t.Errorf("erasure answer on node a: %s, want groups [%s] and 2 disconnected (on node b)", r.Body, room)
	}

	mustErasedClosed(t, bob, b1, b2)
	// b's registry dropped bob from the room when a's erasure was published, not at a
	// restart.
	eventually(t, "node b: "+bob+" out of "+room, func() error {
		if got := groupMembers(t, b, room); slices.Contains(got, bob) || !slices.Contains(got, carol) || !slices.Contains(got, dave) {
			return fmt.Errorf("members %v, want carol and dave, not bob", got)
		}
		return nil
	})
	if got := groupMembers(t, a, room); slices.Contains(got, bob) {
		t.Errorf("node a: members of %s after the erasure: %v, want no %s", room, got, bob)
	}
	waitPresence(t, a, bob, false)
	mustNotice(t, cc, packet.CmdExitGroupNotify, bob, room, "carol (a) about bob's erasure")
	mustNotice(t, dc, packet.CmdExitGroupNotify, bob, room, "dave (b) about bob's erasure")
	mustSync(t, cc, "carol")
	mustSync(t, dc, "dave")

	// The room goes on for the members left.
	accepted(t)(cc.ChatGroup(room, "after bob", wait))
	checkChat(t, mustRecvChat(t, dc, "dave"), carol, "after bob", packet.ChatTypeGroup)
}
