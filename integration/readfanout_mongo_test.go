package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// mongoStorageConfig writes the configuration of a gateway storing in database db of the
// MongoDB in uri (extra: more lines of the storage section) and returns its path.
func mongoStorageConfig(t *testing.T, uri, db, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
auth:
  mode: open
api:
  keys: [%q]
storage:
  plugin: mongo
  mongo:
    uri: %q
    database: %q
  page_size: 50
%s
hooks:
  enabled: false   # no rate limit
log:
  level: debug
`, testAPIKey, uri, db, extra)
	path := filepath.Join(t.TempDir(), "timgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadFanoutMongoShared: two gateways (not a cluster: the group is known to the
// first) on one MongoDB database (the mongo plugin's shared mode),
// storage.read_fanout_members: 2. Chats to a group of four are stored
// once (no inbox entry in the database until a member asks); a member asking through
// both gateways at once gets each chat once, and once confirmed through one gateway
// nothing through the other; a member who joined later gets only the chats after.
func TestReadFanoutMongoShared(t *testing.T) {
	t.Parallel()
	uri := mongoURI(t)
	db := fmt.Sprintf("timgwit_rfmongo_%d_%d", os.Getpid(), idSeq.Add(1))
	t.Cleanup(func() { dropDatabase(t, uri, db) })
	cfg := mongoStorageConfig(t, uri, db, "  read_fanout_members: 2\n")
	alice, bob, carol, dave, erin := uid("rfm-alice"), uid("rfm-bob"), uid("rfm-carol"), uid("rfm-dave"), uid("rfm-erin")
	room := uid("rfm-room")
	g1 := startStorageGateway(t, "readfanout-mongo-1", cfg)
	g2 := startStorageGateway(t, "readfanout-mongo-2", cfg)
	for _, u := range []string{bob, carol, dave} {
		joinAndLeave(t, g1, u, room)
	}
	a := g1.login(t, epTCP, alice)
	if _, err := a.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sendGroup(t, a, room, fmt.Sprintf("r%d", i))
	}
	joinAndLeave(t, g1, erin, room)
	sendGroup(t, a, room, "r3")

	// Stored once: four chats flagged read fan-out, no inbox entry yet.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(ctx)
	if n, err := cl.Database(db).Collection("messages").CountDocuments(ctx, bson.D{{Key: "rf", Value: true}}); err != nil || n != 4 {
		t.Errorf("read fan-out chats stored: %d (%v), want 4", n, err)
	}
	if n, err := cl.Database(db).Collection("inbox").CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("inbox entries before any offline query: %d (%v), want 0", n, err)
	}

	// bob asks through both gateways at once: the same four, each once.
	b1, b2 := g1.login(t, epTCP, bob), g2.login(t, epTCP, bob)
	pages := make([]*messagePage, 2)
	var wg sync.WaitGroup
	for i, conn := range []*timclient.Conn{b1, b2} {
		wg.Go(func() {
			r, err := conn.Request(packet.CmdGetMessageReq, map[string]any{"userId": bob, "type": 0}, wait)
			if err != nil || r.Code != packet.StatusGetOfflineMsgOK {
				t.Errorf("bob's query %d: %v %v", i, r, err)
				return
			}
			var p messagePage
			if err := r.DataInto(&p); err != nil {
				t.Error(err)
				return
			}
			pages[i] = &p
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want := []string{"r0", "r1", "r2", "r3"}
	for i, p := range pages {
		if got := groupIDs(p, room); !slices.Equal(got, want) {
			t.Errorf("bob through gateway %d: %v, want %v", i+1, got, want)
		}
	}
	after := query(t, b2, map[string]any{"userId": bob, "type": 0, "ack": max(pages[0].Cursor, pages[1].Cursor)}, packet.StatusGetOfflineMsgOK)
	if after.Confirmed != 4 || len(after.ids()) != 0 {
		t.Errorf("bob after ack through gateway 2: confirmed %d, left %v", after.Confirmed, after.ids())
	}
	if got := drainOffline(t, b1, bob); len(got) != 0 {
		t.Errorf("bob through gateway 1 after confirming: %v, want none", got)
	}

	// carol through gateway 2, erin (joined after r2) through gateway 1, alice nothing of hers.
	if got := drainOffline(t, g2.login(t, epTCP, carol), carol); !slices.Equal(got, want) {
		t.Errorf("carol: %v, want %v", got, want)
	}
	if got := drainOffline(t, g1.login(t, epTCP, erin), erin); !slices.Equal(got, []string{"r3"}) {
		t.Errorf("erin (joined after r2): %v, want [r3]", got)
	}
	if got := drainOffline(t, a, alice); len(got) != 0 {
		t.Errorf("alice: %v, want none of her own", got)
	}
	// History (through the gateway that knows the group: these two are not a cluster).
	h := query(t, g1.login(t, epTCP, dave), map[string]any{"userId": dave, "type": 1, "groupId": room}, packet.StatusGetHistoryOK)
	if got := groupIDs(h, room); !slices.Equal(got, want) {
		t.Errorf("group history: %v, want %v", got, want)
	}
}
