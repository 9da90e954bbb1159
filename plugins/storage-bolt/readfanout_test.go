package storagebolt

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// reopenAsOlder changes s's database with older (to what an older version left), closes
// s and opens dir again.
func reopenAsOlder(t *testing.T, s *Store, dir string, older func(tx *bolt.Tx) error) *Store {
	t.Helper()
	if err := s.db.Update(older); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openRF(t, dir)
}

func openRF(t *testing.T, dir string) *Store {
	t.Helper()
	cfg, _ := json.Marshal(Config{Dir: dir})
	s := &Store{}
	res, err := s.Open(context.Background(), &pb.OpenRequest{Config: cfg})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !res.ReadFanout {
		t.Fatalf("Open answered %v: want read_fanout", res)
	}
	return s
}

func rfReq(from, group, id string) *pb.AppendRequest {
	return &pb.AppendRequest{Message: &pb.Message{Conv: storage.GroupConv(group), Id: id, From: from, GroupId: group,
		ChatType: storage.ChatTypeGroup, CreateTime: 1, ServerTime: 2, ReadFanout: true}}
}

// TestReadFanoutUpgrade: a store written before ugroups existed (members only) gets the
// memberships listed by user at Open, so its members pull read fan-out chats.
func TestReadFanoutUpgrade(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openRF(t, dir)
	if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "g", Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	s = reopenAsOlder(t, s, dir, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bUGroups); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bUGroups); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Delete(kUGroups)
	})
	defer s.Close()
	if _, err := s.Append(ctx, []*pb.AppendRequest{rfReq("alice", "g", "m1")}); err != nil {
		t.Fatal(err)
	}
	in, err := s.Inbox(ctx, &pb.InboxRequest{User: "bob"})
	if err != nil || len(in.Entries) != 1 || in.Entries[0].Message.Id != "m1" {
		t.Fatalf("bob's inbox after the upgrade: %v, %v; want m1", in, err)
	}
}

// TestReadFanoutConcurrentPulls: while chats are appended (and applied in the
// background), a member queries and confirms its inbox from two goroutines at once: at
// the end it has seen every chat, and no chat had two entries at a time.
func TestReadFanoutConcurrentPulls(t *testing.T) {
	ctx := context.Background()
	s := openRF(t, t.TempDir())
	defer s.Close()
	if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "g", Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	const n = 600
	var mu sync.Mutex
	seen := map[string]int64{} // id -> cursor of its entry
	check := func() {
		in, err := s.Inbox(ctx, &pb.InboxRequest{User: "bob", Limit: 50})
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range in.Entries {
			if c, ok := seen[e.Message.Id]; ok && c != e.Cursor {
				t.Errorf("%s has entries at cursors %d and %d", e.Message.Id, c, e.Cursor)
			}
			seen[e.Message.Id] = e.Cursor
		}
		if len(in.Entries) > 0 {
			if _, err := s.Confirm(ctx, &pb.ConfirmRequest{User: "bob", Cursor: in.Entries[len(in.Entries)-1].Cursor}); err != nil {
				t.Error(err)
			}
		}
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
					check()
				}
			}
		}()
	}
	for i := 0; i < n; i += 10 {
		var batch []*pb.AppendRequest
		for j := i; j < i+10; j++ {
			batch = append(batch, rfReq("alice", "g", fmt.Sprint("m", j)))
		}
		if _, err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	for {
		before := len(seen)
		check()
		if len(seen) == before {
			break
		}
	}
	if len(seen) != n {
		t.Errorf("bob saw %d chats, want %d", len(seen), n)
	}
}

// TestReadFanoutPullInSteps: a member who missed more chats than one pull transaction
// examines gets them all, once, in seq order, over several transactions (and groups).
func TestReadFanoutPullInSteps(t *testing.T) {
	old := pullBatch
	pullBatch = 7
	t.Cleanup(func() { pullBatch = old })
	ctx := context.Background()
	s := openRF(t, t.TempDir())
	defer s.Close()
	for _, g := range []string{"g1", "g2"} {
		if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: g, Members: []string{"alice", "bob"}}); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 25 {
		g := []string{"g1", "g2"}[i%2]
		id := fmt.Sprint(g, "-", i)
		reqs := []*pb.AppendRequest{rfReq("alice", g, id)}
		if i%5 == 0 { // write fan-out chats in between count against the budget too
			reqs = append(reqs, &pb.AppendRequest{Message: &pb.Message{Conv: storage.GroupConv(g), Id: "w" + id, From: "alice",
				GroupId: g, ChatType: storage.ChatTypeGroup}, Receivers: []string{"bob"}})
		}
		if _, err := s.Append(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	in, err := s.Inbox(ctx, &pb.InboxRequest{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	lastSeq := map[string]int64{}
	for _, e := range in.Entries {
		m := e.Message
		if got[m.Id] {
			t.Errorf("%s twice", m.Id)
		}
		got[m.Id] = true
		if m.ReadFanout && m.Seq <= lastSeq[m.Conv] {
			t.Errorf("%s (seq %d) after seq %d of %s", m.Id, m.Seq, lastSeq[m.Conv], m.Conv)
		}
		if m.ReadFanout {
			lastSeq[m.Conv] = m.Seq
		}
	}
	for _, id := range want {
		if !got[id] {
			t.Errorf("bob did not get %s", id)
		}
	}
	if len(in.Entries) != 25+5 {
		t.Errorf("bob has %d entries, want 30 (25 pulled, 5 written)", len(in.Entries))
	}
}
