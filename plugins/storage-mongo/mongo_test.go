package storagemongo

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/timgw/timgw/core/pluginhost"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
	"github.com/timgw/timgw/plugins/storage/storagetest"
)

// uriEnv names the MongoDB (or FerretDB) the tests use; they skip without it.
const uriEnv = "TIMGW_MONGO_URI"

// opener opens stores as databases "timgwtest_<name>" of the server in TIMGW_MONGO_URI,
// dropped when the test that created them ends.
func opener(t *testing.T) storagetest.Opener {
	uri := os.Getenv(uriEnv)
	if uri == "" {
		t.Skipf("%s is not set: no MongoDB to test against (CI starts FerretDB with .ci/start-ferretdb.sh: eval \"$(bash .ci/start-ferretdb.sh)\")", uriEnv)
	}
	return func(t *testing.T, name string) storage.Backend {
		t.Helper()
		cfg := testConfig(uri, name)
		s := &Store{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
			t.Fatalf("Open %s: %v", uri, err)
		}
		t.Cleanup(func() {
			d := &Store{}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := d.Open(ctx, &pb.OpenRequest{Config: cfg}); err == nil {
				_ = d.Drop(ctx)
				_ = d.Close()
			}
		})
		return s
	}
}

// testConfig is the Open configuration of the test store called name.
func testConfig(uri, name string) []byte {
	cfg, _ := json.Marshal(Config{URI: uri, Database: "timgwtest_" + name, Timeout: "20s"})
	return cfg
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, opener(t))
}

func TestConformanceOverGRPC(t *testing.T) {
	storagetest.Run(t, storagetest.OverGRPC(opener(t)))
}

func TestOpenBadConfig(t *testing.T) {
	for _, cfg := range []string{`{"timeout": "soon"}`, `{"uri": 5}`, `[`} {
		s := &Store{}
		if _, err := s.Open(context.Background(), &pb.OpenRequest{Config: []byte(cfg)}); err == nil {
			_ = s.Close()
			t.Errorf("Open(%s) succeeded", cfg)
		}
	}
}

// TestMain lets the test binary serve as the plugin executable (`__plugin storage mongo`)
// for the shared-store checks, which start it several times.
func TestMain(m *testing.M) {
	pluginhost.Register(pluginhost.Builtin{Kind: pluginhost.Storage, Name: Name, Main: Main})
	pluginhost.Main()
	os.Exit(m.Run())
}

// TestSharedConformance runs several plugin processes on one database at once, as the
// gateways of a cluster do.
func TestSharedConformance(t *testing.T) {
	uri := os.Getenv(uriEnv)
	if uri == "" {
		t.Skipf("%s is not set: no MongoDB to test against (CI starts FerretDB with .ci/start-ferretdb.sh: eval \"$(bash .ci/start-ferretdb.sh)\")", uriEnv)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	open := opener(t)
	storagetest.RunShared(t, storagetest.SharedPlugin{
		Command: func() *exec.Cmd {
			cmd := pluginhost.Command(exe, pluginhost.Storage, Name)
			pluginhost.Tie(cmd)
			return cmd
		},
		Config: func(t *testing.T, name string) []byte {
			_ = open(t, name).Close() // creates the database's indexes, drops it when t ends
			return testConfig(uri, name)
		},
	})
}

// TestConfirmKeepsLateEntries: with several processes on one database, inbox cursors are
// reserved from one counter before the insert, so an entry can become visible after a
// read that returned a higher cursor. Confirming that cursor must not remove it unread.
func TestConfirmKeepsLateEntries(t *testing.T) {
	s := opener(t)(t, "latecursor").(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := func(id string) *pb.Message {
		return &pb.Message{Conv: storage.PrivateConv("alice", "bob"), Id: id, From: "alice", To: "bob", ChatType: 2, Content: id, CreateTime: 1}
	}
	// A reservation by a slow process: cursors taken now, its entry written later.
	lateCur, err := s.nextSeqs(ctx, "inbox", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []*pb.AppendRequest{{Message: msg("m1"), Receivers: []string{"bob"}}}); err != nil {
		t.Fatal(err)
	}
	page, err := s.Inbox(ctx, &pb.InboxRequest{User: "bob", Limit: 10})
	if err != nil || len(page.Entries) != 1 {
		t.Fatalf("first read: %v entries, err %v", page, err)
	}
	cursor := page.Entries[0].Cursor
	if cursor <= lateCur {
		t.Fatalf("cursor %d not above the earlier reservation %d", cursor, lateCur)
	}
	// The slow process writes its entry now, below the cursor just read.
	late := msg("m0")
	if _, err := s.Append(ctx, []*pb.AppendRequest{{Message: late}}); err != nil {
		t.Fatal(err)
	}
	docs, err := s.findByDK(ctx, []string{dedupKey("alice", "m0")})
	if err != nil || docs[dedupKey("alice", "m0")] == nil {
		t.Fatalf("m0 not stored: %v", err)
	}
	ref := docs[dedupKey("alice", "m0")].ID
	if _, err := s.inbox.InsertOne(ctx, &inboxDoc{ID: inboxID("bob", ref), User: "bob", Cur: lateCur, Conv: page.Entries[0].Message.Conv, Ref: ref}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, &pb.ConfirmRequest{User: "bob", Cursor: cursor}); err != nil {
		t.Fatal(err)
	}
	page, err = s.Inbox(ctx, &pb.InboxRequest{User: "bob", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].Message.Id != "m0" {
		t.Fatalf("after confirming %d: %d entries, want the late m0 still there", cursor, len(page.Entries))
	}
	if _, err := s.Confirm(ctx, &pb.ConfirmRequest{User: "bob", Cursor: page.Entries[0].Cursor}); err != nil {
		t.Fatal(err)
	}
	if page, _ = s.Inbox(ctx, &pb.InboxRequest{User: "bob", Limit: 10}); len(page.Entries) != 0 {
		t.Fatalf("after reading and confirming m0: %d entries left", len(page.Entries))
	}
}
