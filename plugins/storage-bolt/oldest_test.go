package storagebolt

import (
	"context"
	"maps"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// oldestEntries lists the expiry index, and the index built from the messages as Open
// builds it for an older store.
func oldestEntries(t *testing.T, s *Store) (got, want map[string]bool) {
	t.Helper()
	if err := s.syncReads(); err != nil {
		t.Fatal(err)
	}
	got, want = map[string]bool{}, map[string]bool{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		list := func(into map[string]bool) error {
			return tx.Bucket(bOldest).ForEach(func(k, _ []byte) error {
				into[string(k)] = true
				return nil
			})
		}
		if err := list(got); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bOldest); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bOldest); err != nil {
			return err
		}
		if err := tx.Bucket(bMeta).Delete(kOldest); err != nil {
			return err
		}
		if err := buildOldest(tx); err != nil {
			return err
		}
		if err := list(want); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatal(err)
	}
	return got, want
}

var errRollback = &rollback{}

type rollback struct{}

func (*rollback) Error() string { return "rollback" }

func chatAt(from, to, id string, serverTime int64) *pb.AppendRequest {
	return &pb.AppendRequest{Message: &pb.Message{Conv: storage.PrivateConv(from, to), Id: id, From: from, To: to,
		ChatType: storage.ChatTypePrivate, CreateTime: serverTime, ServerTime: serverTime}, Receivers: []string{to}}
}

// TestExpiryIndex: after each kind of change of a conversation's first message, the
// expiry index has one entry per conversation, at its first message's time: the index
// Open builds from the messages.
func TestExpiryIndex(t *testing.T) {
	ctx := context.Background()
	s := openRF(t, t.TempDir())
	defer s.Close()
	join := &pb.JoinGroupRequest{GroupId: "room", Members: []string{"alice", "bob"}}
	if _, err := s.JoinGroup(ctx, join); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"append", func() error {
			_, err := s.Append(ctx, []*pb.AppendRequest{chatAt("alice", "bob", "a1", 10), chatAt("alice", "bob", "a2", 20),
				chatAt("carol", "dave", "c1", 15), rfReq("bob", "room", "r1")})
			return err
		}},
		{"recall the first chat", func() error {
			_, err := s.Recall(ctx, &pb.RecallRequest{From: "alice", Id: "a1", By: "alice", Time: 30, Receivers: []string{"bob"}})
			return err
		}},
		{"expire a head", func() error {
			_, err := s.Expire(ctx, &pb.ExpireRequest{ChatType: storage.ChatTypePrivate, BeforeMs: 12, Limit: 1})
			return err
		}},
		{"erase a whole conversation", func() error {
			_, err := s.EraseUser(ctx, &pb.EraseUserRequest{User: "dave"})
			return err
		}},
		{"expire everything private", func() error {
			_, err := s.Expire(ctx, &pb.ExpireRequest{ChatType: storage.ChatTypePrivate, BeforeMs: 1 << 50})
			return err
		}},
		{"write again", func() error {
			_, err := s.Append(ctx, []*pb.AppendRequest{chatAt("bob", "alice", "b1", 5), chatAt("bob", "alice", "b2", 6)})
			return err
		}},
		{"erase the group's sender", func() error {
			_, err := s.EraseUser(ctx, &pb.EraseUserRequest{User: "bob"})
			return err
		}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, want := oldestEntries(t, s); !maps.Equal(got, want) {
			t.Errorf("after %s: index %q, want %q", st.name, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
	}
}

// TestExpiryIndexUpgrade: a store written before the expiry index gets it built at Open,
// and its due messages expire.
func TestExpiryIndexUpgrade(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openRF(t, dir)
	if _, err := s.Append(ctx, []*pb.AppendRequest{chatAt("alice", "bob", "a1", 10), chatAt("carol", "dave", "c1", 20)}); err != nil {
		t.Fatal(err)
	}
	if err := s.syncReads(); err != nil {
		t.Fatal(err)
	}
	s = reopenAsOlder(t, s, dir, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bOldest); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Delete(kOldest)
	})
	defer s.Close()
	res, err := s.Expire(ctx, &pb.ExpireRequest{ChatType: storage.ChatTypePrivate, BeforeMs: 15})
	if err != nil || res.Removed != 1 {
		t.Fatalf("Expire(private, 15) after the upgrade: %v, %v; want a1 removed", res, err)
	}
	if h, err := s.History(ctx, &pb.HistoryRequest{Conv: storage.PrivateConv("carol", "dave")}); err != nil || len(h.Messages) != 1 {
		t.Errorf("history of carol and dave: %v, %v; want c1", h, err)
	}
}
