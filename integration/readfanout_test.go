package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Read fan-out (docs/storage.md, "Large groups"): with storage.read_fanout_members: 3, a
// chat to a group of five is stored once, and each member gets it from its offline query
// (cmd 19 type 0) with the usual confirmation.

// joinAndLeave logs user in, joins group and disconnects (the user is then an offline
// member).
func joinAndLeave(t *testing.T, g *gateway, user, group string) {
	t.Helper()
	c := g.login(t, epTCP, user)
	if _, err := c.JoinGroup(group, wait); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func groupIDs(p *messagePage, group string) []string {
	var out []string
	for _, c := range p.Groups[group] {
		out = append(out, string(c.ID))
	}
	return out
}

func sendGroup(t *testing.T, c *timclient.Conn, group, id string) storedAck {
	t.Helper()
	r, err := c.Chat(packet.Chat{ID: packet.Str(id), GroupID: packet.Str(group), ChatType: packet.ChatTypeGroup, Content: "to the room: " + id}, wait)
	if err != nil || (r.Code != packet.StatusOK && r.Code != packet.StatusOffline) {
		t.Fatalf("group chat %s: %v %v", id, r, err)
	}
	var ack storedAck
	if err := r.DataInto(&ack); err != nil || ack.Seq == 0 {
		t.Fatalf("group chat %s: ack %s (%v)", id, r.Data, err)
	}
	return ack
}

// TestReadFanoutOffline: offline members of a large group get its chats from cmd 19
// type 0, once confirmed never again; a member online gets them live and in its offline
// queue too (as with write fan-out); a member who joined later gets only the chats after
// its join; a delivered receipt confirms them like inbox entries; history and a resend
// (duplicate) work as for any chat; and all of it survives a restart. With bolt, and with
// mongo when TIMGW_MONGO_URI names a MongoDB (FerretDB in CI).
func TestReadFanoutOffline(t *testing.T) {
	t.Parallel()
	t.Run("bolt", func(t *testing.T) {
		t.Parallel()
		testReadFanoutOffline(t, storageConfig(t, "  read_fanout_members: 3\n"+adminSection), true)
	})
	t.Run("mongo", func(t *testing.T) {
		t.Parallel()
		uri := mongoURI(t)
		db := fmt.Sprintf("timgwit_readfanout_%d_%d", os.Getpid(), idSeq.Add(1))
		t.Cleanup(func() { dropDatabase(t, uri, db) })
		path := mongoStorageConfig(t, uri, db, "  read_fanout_members: 3\n"+adminSection)
		testReadFanoutOffline(t, path, true) // the mongo plugin does read fan-out too
	})
}

func testReadFanoutOffline(t *testing.T, cfg string, wantRF bool) {
	alice, bob, carol, dave, erin := uid("rf-alice"), uid("rf-bob"), uid("rf-carol"), uid("rf-dave"), uid("rf-erin")
	room := uid("rf-room")
	g := startStorageGateway(t, "readfanout-1", cfg)
	joinAndLeave(t, g, bob, room)
	joinAndLeave(t, g, carol, room)
	d := g.login(t, epWS, dave)
	if _, err := d.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	a := g.login(t, epTCP, alice)
	if _, err := a.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	joinAndLeave(t, g, uid("rf-frank"), room) // five members: alice's chats go to four

	var seqs []int64
	for i := range 3 {
		seqs = append(seqs, sendGroup(t, a, room, fmt.Sprintf("g%d", i)).Seq)
	}
	for i := range 3 {
		if c := mustRecvChat(t, d, dave); string(c.ID) != fmt.Sprintf("g%d", i) || c.Seq != seqs[i] {
			t.Errorf("dave live: %s seq %d, want g%d seq %d", c.ID, c.Seq, i, seqs[i])
		}
	}
	joinAndLeave(t, g, erin, room)
	sendGroup(t, a, room, "g3")

	// bob: everything, in seq order; the same page until confirmed; then nothing.
	b := g.login(t, epTCP, bob)
	first := query(t, b, map[string]any{"userId": bob, "type": 0}, packet.StatusGetOfflineMsgOK)
	if got := groupIDs(first, room); !slices.Equal(got, []string{"g0", "g1", "g2", "g3"}) {
		t.Fatalf("bob's offline: %v, want g0..g3", got)
	}
	if c := first.Groups[room][0]; string(c.From) != alice || c.Content != "to the room: g0" || c.Seq != seqs[0] {
		t.Errorf("bob's first offline chat: %+v", c)
	}
	if again := query(t, b, map[string]any{"userId": bob, "type": 0}, packet.StatusGetOfflineMsgOK); !slices.Equal(again.ids(), first.ids()) || again.Cursor != first.Cursor {
		t.Errorf("unconfirmed, asked again: %v (cursor %d), want %v (cursor %d)", again.ids(), again.Cursor, first.ids(), first.Cursor)
	}
	after := query(t, b, map[string]any{"userId": bob, "type": 0, "ack": first.Cursor}, packet.StatusGetOfflineMsgOK)
	if after.Confirmed != 4 || len(after.ids()) != 0 {
		t.Errorf("bob after ack: confirmed %d, left %v", after.Confirmed, after.ids())
	}
	// A resend is a duplicate: nobody gets it twice.
	if dup := sendGroup(t, a, room, "g1"); !dup.Duplicate || dup.Seq != seqs[1] {
		t.Errorf("resend of g1: %+v, want a duplicate of seq %d", dup, seqs[1])
	}

	// erin joined after g2: only g3.
	e := g.login(t, epTCP, erin)
	if got := drainOffline(t, e, erin); !slices.Equal(got, []string{"g3"}) {
		t.Errorf("erin (joined after g2): %v, want [g3]", got)
	}
	// dave got them live; they wait in his offline queue too until confirmed.
	if got := drainOffline(t, d, dave); !slices.Equal(got, []string{"g0", "g1", "g2", "g3"}) {
		t.Errorf("dave: %v, want g0..g3", got)
	}
	// alice: none of her own.
	if got := drainOffline(t, a, alice); len(got) != 0 {
		t.Errorf("alice's offline: %v, want none of her own chats", got)
	}
	h := query(t, e, map[string]any{"userId": erin, "type": 1, "groupId": room}, packet.StatusGetHistoryOK)
	if got := groupIDs(h, room); !slices.Equal(got, []string{"g0", "g1", "g2", "g3"}) {
		t.Errorf("group history: %v", got)
	}
	// Stored by read fan-out: the four chats (the resend not counted), when the plugin
	// does read fan-out (/admin/status says; bolt does); else the gateway fell back to
	// write fan-out and every check above holds the same.
	var st struct {
		Parts struct {
			Storage struct {
				ReadFanout bool `json:"readFanout"`
			} `json:"storage"`
		} `json:"parts"`
	}
	r, err := newAdminClient(t, g).do(http.MethodGet, "/admin/status")
	if err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &st) != nil {
		t.Fatalf("/admin/status: %v %v", r, err)
	}
	want := 0.0
	if st.Parts.Storage.ReadFanout {
		want = 4
	} else if wantRF {
		t.Errorf("/admin/status: the storage plugin does not do read fan-out: %s", r.Body)
	}
	wantMetrics(t, adminMetrics(t, g), map[string]func(float64) bool{"timgw_storage_read_fanout_total": equals(want)})
	a.Close()
	b.Close()
	e.Close()
	d.Close()

	// carol confirms by receipt up to g1, then after a restart gets g2 and g3 only.
	c := g.login(t, epTCP, carol)
	mustReceipt(t, c, map[string]any{"groupId": room, "delivered": seqs[1]}, [2]int64{seqs[1], 0})
	c.Close()
	stopGateway(t, g)
	g2 := startStorageGateway(t, "readfanout-2", cfg)
	c2 := g2.login(t, epTCP, carol)
	if got := drainOffline(t, c2, carol); !slices.Equal(got, []string{"g2", "g3"}) {
		t.Errorf("carol after a receipt up to g1 and a restart: %v, want [g2 g3]", got)
	}
	b2 := g2.login(t, epTCP, bob)
	if got := drainOffline(t, b2, bob); len(got) != 0 {
		t.Errorf("bob after a restart: %v, want nothing (confirmed before)", got)
	}
}
