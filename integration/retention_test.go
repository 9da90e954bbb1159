package integration

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Retention and erasure (docs/storage.md#retention-and-erasure): expired private chats
// leave history and the offline queue while group chats (kept forever) stay; erasure
// through the admin API removes a user's chats from another user's history and queue.

// TestRetentionExpiresMessages: storage.retention.private 2s, interval 500ms.
func TestRetentionExpiresMessages(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, "  retention:\n    private: 2s\n    interval: 500ms\n    batch: 10")
	g := startStorageGateway(t, "retention", cfg)
	alice, bob, room := uid("rt-alice"), uid("rt-bob"), uid("rt-room")
	a := g.login(t, epTCP, alice)
	if _, err := a.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	r, err := a.Chat(packet.Chat{ID: "old", To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "soon gone"}, wait)
	mustCode(t, "private chat to offline bob", r, err, packet.StatusOffline)
	r, err = a.Chat(packet.Chat{ID: "kept", GroupID: packet.Str(room), ChatType: packet.ChatTypeGroup, Content: "kept forever"}, wait)
	mustCode(t, "group chat", r, err, packet.StatusOK)

	b := g.login(t, epWS, bob)
	// Within the period: bob's queue and history have it (at most 2 s after it was sent).
	start := time.Now()
	offline := query(t, b, map[string]any{"type": 0}, packet.StatusGetOfflineMsgOK)
	history := query(t, b, map[string]any{"type": 1, "fromUserId": alice}, packet.StatusGetHistoryOK)
	if time.Since(start) < time.Second && (!slices.Equal(offline.ids(), []string{"old"}) || !slices.Equal(history.ids(), []string{"old"})) {
		t.Fatalf("before expiry: offline %v, history %v, want [old] in both", offline.ids(), history.ids())
	}
	// Expired: gone from both within the period, an interval and generous slack.
	deadline := time.Now().Add(30 * time.Second)
	for len(history.ids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		history = query(t, b, map[string]any{"type": 1, "fromUserId": alice}, packet.StatusGetHistoryOK)
	}
	if got := history.ids(); len(got) != 0 {
		t.Fatalf("history after the retention period: %v, want nothing", got)
	}
	if got := query(t, b, map[string]any{"type": 0}, packet.StatusGetOfflineMsgOK).ids(); len(got) != 0 {
		t.Errorf("offline queue after the retention period: %v, want nothing", got)
	}
	if got := query(t, a, map[string]any{"type": 1, "groupId": room}, packet.StatusGetHistoryOK).ids(); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("group history (no group retention): %v, want [kept]", got)
	}
	if m := string(adminGet(t, g, "/metrics")); !strings.Contains(m, "timgw_storage_expired_total{kind=\"private\"} 1\n") {
		t.Errorf("/metrics: no timgw_storage_expired_total{kind=\"private\"} 1")
	}
	// The conversation goes on with the next seq.
	r, err = a.Chat(packet.Chat{ID: "new", To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "after"}, wait)
	mustCode(t, "chat after expiry", r, err, packet.StatusOK)
	var ack storedAck
	if err := r.DataInto(&ack); err != nil || ack.Seq != 2 {
		t.Errorf("the chat after expiry: %+v (%v), want seq 2 (seqs are not reused)", ack, err)
	}
}

// TestEraseUserAdminAPI: DELETE /admin/users/{id} closes the user's connections (TCP and
// WebSocket, the latter with the reason in the close frame) while others stay connected,
// removes the user from its groups (the members are told once, cmd 10), and removes the
// user's chats from another user's history and offline queue.
func TestEraseUserAdminAPI(t *testing.T) {
	t.Parallel()
	g := startStorageGateway(t, "erasure", storageConfig(t, ""))
	alice, bob, carol, room := uid("er-alice"), uid("er-bob"), uid("er-carol"), uid("er-room")
	a := g.login(t, epTCP, alice)
	if _, err := a.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	a.Close() // alice is offline: her queue gets what follows
	b := g.login(t, epWS, bob)
	if _, err := b.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	b2 := g.login(t, epTCP, bob) // bob's second device
	c := g.login(t, epTCP, carol)
	mustJoin(t, c, room, "carol")
	for _, ch := range []struct {
		from *timclient.Conn
		chat packet.Chat
		want packet.Status
	}{
		{b, packet.Chat{ID: "b1", To: packet.Str(alice), ChatType: packet.ChatTypePrivate, Content: "from bob"}, packet.StatusOffline},
		{b, packet.Chat{ID: "b2", GroupID: packet.Str(room), ChatType: packet.ChatTypeGroup, Content: "bob to the room"}, packet.StatusOK},
		{c, packet.Chat{ID: "c1", To: packet.Str(alice), ChatType: packet.ChatTypePrivate, Content: "from carol"}, packet.StatusOffline},
	} {
		r, err := ch.from.Chat(ch.chat, wait)
		mustCode(t, "chat "+string(ch.chat.ID), r, err, ch.want)
	}

	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	defer api.CloseIdle()
	if r, err := api.Do(http.MethodDelete, "/admin/users/"+bob, nil); err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("DELETE without an admin key: %v %v, want 401", r, err)
	}
	r, err := api.Do(http.MethodDelete, "/admin/users/"+bob, nil, "X-Admin-Key", hookAdminKey)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("DELETE /admin/users/%s: %v %v", bob, r, err)
	}
	var res struct {
		User    string `json:"user"`
		Removed struct {
			Messages, Inbox, Conversations, Groups int64
		} `json:"removed"`
		Groups       []string `json:"groups"`
		Disconnected int      `json:"disconnected"`
	}
	if err := json.Unmarshal(r.Body, &res); err != nil {
		t.Fatal(err)
	}
	if res.User != bob || res.Removed.Messages != 2 || res.Removed.Conversations != 1 || res.Removed.Groups != 1 ||
		!slices.Equal(res.Groups, []string{room}) || res.Disconnected != 2 {
		t.Errorf("erasure answer %s, want 2 messages, 1 conversation, 1 group (%s), 2 disconnected", r.Body, room)
	}
	mustErasedClosed(t, bob, b, b2)
	// carol, a member of the room, is told once that bob left, and stays connected.
	mustNotice(t, c, packet.CmdExitGroupNotify, bob, room, "carol about bob's erasure")
	mustNotGet(t, c, packet.CmdExitGroupNotify, "carol after bob's leave notice")
	if got := groupMembers(t, g, room); slices.Contains(got, bob) || !slices.Contains(got, carol) {
		t.Errorf("members of %s after bob's erasure: %v, want carol and not bob", room, got)
	}

	a = g.login(t, epWS, alice)
	if got := query(t, a, map[string]any{"type": 0}, packet.StatusGetOfflineMsgOK).ids(); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("alice's offline queue after bob's erasure: %v, want [c1]", got)
	}
	if got := query(t, a, map[string]any{"type": 1, "fromUserId": bob}, packet.StatusGetHistoryOK).ids(); len(got) != 0 {
		t.Errorf("alice's history with bob after erasure: %v, want nothing", got)
	}
	if got := query(t, a, map[string]any{"type": 1, "groupId": room}, packet.StatusGetHistoryOK).ids(); len(got) != 0 {
		t.Errorf("group history after bob's erasure: %v, want nothing", got)
	}
	if got := query(t, a, map[string]any{"type": 1, "fromUserId": carol}, packet.StatusGetHistoryOK).ids(); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("alice's history with carol: %v, want [c1] (untouched)", got)
	}
}

// mustErasedClosed checks that conns, the connections of an erased user, were closed by
// the server; a WebSocket one with a close frame saying "account erased".
func mustErasedClosed(t *testing.T, user string, conns ...*timclient.Conn) {
	t.Helper()
	for i, c := range conns {
		if _, err := c.ExpectClosed(wait); err != nil {
			t.Errorf("%s's connection %d (%s) after the erasure: %v", user, i+1, c.Proto(), err)
			continue
		}
		var ce *timclient.CloseError
		if c.Proto() == timclient.WS && (!errors.As(c.Err(), &ce) || ce.Reason != "account erased") {
			t.Errorf("%s's WebSocket connection closed with %v, want a close frame with reason \"account erased\"", user, c.Err())
		}
	}
}

// groupMembers returns the members of group that g's HTTP API lists.
func groupMembers(t *testing.T, g *gateway, group string) []string {
	t.Helper()
	a, err := apiCall(g, http.MethodGet, "/api/v1/groups/"+url.PathEscape(group)+"/members", nil)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Members []string `json:"members"`
	}
	if err := json.Unmarshal(a.Data, &d); err != nil {
		t.Fatalf("members of %s on %s: code %d data %s: %v", group, g.name, a.Code, a.Data, err)
	}
	return d.Members
}
