package storagemongo

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// rfChat is a read fan-out chat of from to group.
func rfChat(from, group, id string) *pb.AppendRequest {
	return &pb.AppendRequest{Message: &pb.Message{Conv: storage.GroupConv(group), Id: id, From: from, GroupId: group,
		ChatType: storage.ChatTypeGroup, CreateTime: 1, ServerTime: 2, Content: id, ReadFanout: true}}
}

// openNamed opens the test store called name (opener) and a second Store on the same
// database with its own client, as a second gateway's plugin process has.
func openNamed(t *testing.T, name string) (*Store, *Store) {
	t.Helper()
	a := opener(t)(t, name).(*Store)
	b := &Store{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.Open(ctx, &pb.OpenRequest{Config: testConfig(os.Getenv(uriEnv), name)}); err != nil {
		t.Fatalf("Open a second store: %v", err)
	}
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	return a, b
}

// pendingIDs reads user's whole inbox and returns the message ids in cursor order.
func pendingIDs(t *testing.T, s *Store, user string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := s.Inbox(ctx, &pb.InboxRequest{User: user})
	if err != nil {
		t.Fatalf("Inbox(%s): %v", user, err)
	}
	ids := make([]string, len(res.Entries))
	for i, e := range res.Entries {
		ids[i] = e.Message.Id
	}
	return ids
}

// TestReadFanoutSharedPulls: two stores on one database (two gateways' plugin processes)
// pull for the same members at once while read fan-out chats are appended: in the end
// every member has exactly one entry of each chat of the others, none missing.
func TestReadFanoutSharedPulls(t *testing.T) {
	a, b := openNamed(t, fmt.Sprintf("rfshared%d", time.Now().UnixNano()%1e9))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const nMembers, nChats = 8, 120
	members := make([]string, nMembers)
	for i := range members {
		members[i] = fmt.Sprintf("u%d", i)
	}
	if _, err := a.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: members}); err != nil {
		t.Fatal(err)
	}
	from := func(i int) string { return members[i%3] } // u0, u1, u2 send: they skip their own
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	wg.Go(func() {
		defer done.Store(true)
		for i := 0; i < nChats; i += 3 {
			var reqs []*pb.AppendRequest
			for j := i; j < i+3; j++ {
				reqs = append(reqs, rfChat(from(j), "big", fmt.Sprintf("c%03d", j)))
			}
			if _, err := a.Append(ctx, reqs); err != nil {
				errs <- err
				return
			}
		}
	})
	for p, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for k := p; !done.Load(); k++ {
				if _, err := s.Inbox(ctx, &pb.InboxRequest{User: members[k%nMembers], Limit: 5}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for u, user := range members {
		var want []string
		for j := range nChats {
			if from(j) != user {
				want = append(want, fmt.Sprintf("c%03d", j))
			}
		}
		got := pendingIDs(t, []*Store{a, b}[u%2], user)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s's inbox: %d entries, want %d (one per chat of the others): %v", user, len(got), len(want), got)
		}
	}
}

// TestReadFanoutPullResumes: a pull cut short (entries of some chats written, the mark
// not raised: the process died) is completed by the next Inbox, without a second entry
// for what was written; and a backlog longer than a pull round is pulled whole.
func TestReadFanoutPullResumes(t *testing.T) {
	old := pullChunk
	pullChunk = 2
	t.Cleanup(func() { pullChunk = old })
	s := opener(t)(t, fmt.Sprintf("rfresume%d", time.Now().UnixNano()%1e9)).(*Store)
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	var reqs []*pb.AppendRequest
	for i := range 7 {
		reqs = append(reqs, rfChat("alice", "big", fmt.Sprintf("r%d", i)))
	}
	if _, err := s.Append(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	// The first half of a pull: bob's entries of r1 and r2 written, then a crash.
	docs, err := s.loadRefs(ctx, []string{docID(storage.GroupConv("big"), 2), docID(storage.GroupConv("big"), 3)})
	if err != nil || len(docs) != 2 {
		t.Fatalf("load r1, r2: %v, %v", docs, err)
	}
	half := []*msgDoc{docs[docID(storage.GroupConv("big"), 2)], docs[docID(storage.GroupConv("big"), 3)]}
	if err := s.addInbox(ctx, half, [][]string{{"bob"}, {"bob"}}); err != nil {
		t.Fatal(err)
	}
	before := pendingIDs(t, s, "bob")
	want := []string{"r1", "r2", "r0", "r3", "r4", "r5", "r6"} // the half-written entries keep their (earlier) cursors
	if !slices.Equal(before, want) {
		t.Fatalf("bob's inbox after the interrupted pull: %v, want %v", before, want)
	}
	if again := pendingIDs(t, s, "bob"); !slices.Equal(again, want) {
		t.Errorf("bob's inbox read again: %v, want %v", again, want)
	}
	var m memberDoc
	if err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: inboxID("big", "bob")}}).Decode(&m); err != nil || m.Pulled != 7 {
		t.Errorf("bob's pulled mark: %d (%v), want 7", m.Pulled, err)
	}
}

// TestReadFanoutIndexes: the queries of a pull use indexes: memberships by user, chats by
// conversation and seq.
func TestReadFanoutIndexes(t *testing.T) {
	requireIndexes(t, "rfindex", []wantIndex{
		{"members", bson.D{{Key: "u", Value: int32(1)}, {Key: "g", Value: int32(1)}}},
		{"messages", bson.D{{Key: "conv", Value: int32(1)}, {Key: "seq", Value: int32(1)}}},
	})
}

// TestReadFanoutHole: a pull does not pass a hole in the group's seqs right after
// younger chats (a lower seq that may still become visible), and passes it once the
// chat after it is older than pullGrace (a hole left by expiry or erasure).
func TestReadFanoutHole(t *testing.T) {
	s := opener(t)(t, fmt.Sprintf("rfhole%d", time.Now().UnixNano()%1e9)).(*Store)
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	var reqs []*pb.AppendRequest
	for i := range 4 {
		r := rfChat("alice", "big", fmt.Sprintf("h%d", i+1))
		r.Message.ServerTime = now - 1000
		reqs = append(reqs, r)
	}
	if _, err := s.Append(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	// h2 (seq 2) "not visible yet": its document is set aside.
	var h2 msgDoc
	id2 := docID(storage.GroupConv("big"), 2)
	if err := s.msgs.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: id2}}).Decode(&h2); err != nil {
		t.Fatal(err)
	}
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{"h1"}) {
		t.Fatalf("bob's inbox with a young hole at seq 2: %v, want [h1]", got)
	}
	if _, err := s.msgs.InsertOne(ctx, &h2); err != nil {
		t.Fatal(err)
	}
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{"h1", "h2", "h3", "h4"}) {
		t.Fatalf("bob's inbox once seq 2 is visible: %v, want h1 to h4", got)
	}
	// A hole that stays (h6 erased): passed once the chat after it is old enough.
	for _, id := range []string{"h5", "h6", "h7"} {
		r := rfChat("alice", "big", id)
		r.Message.ServerTime = now - 1000
		if _, err := s.Append(ctx, []*pb.AppendRequest{r}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.msgs.DeleteOne(ctx, bson.D{{Key: "_id", Value: docID(storage.GroupConv("big"), 6)}}); err != nil {
		t.Fatal(err)
	}
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{"h1", "h2", "h3", "h4", "h5"}) {
		t.Fatalf("bob's inbox with a young hole at seq 6: %v, want h1 to h5", got)
	}
	old := pullGrace
	pullGrace = 500 * time.Millisecond
	t.Cleanup(func() { pullGrace = old })
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{"h1", "h2", "h3", "h4", "h5", "h7"}) {
		t.Fatalf("bob's inbox once the chat after the hole is old: %v, want h1 to h5, h7", got)
	}
}

// TestReadFanoutDevicesAtOnce: a user's devices fetch and confirm at once while chats
// arrive, through one process and through two sharing the database: every chat's entry
// is confirmed exactly once in all (a pull never writes again an entry another pull
// wrote and a device confirmed).
func TestReadFanoutDevicesAtOnce(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(map[bool]string{false: "one process", true: "two processes"}[two], func(t *testing.T) {
			a, b := openNamed(t, fmt.Sprintf("rfdevices%d", time.Now().UnixNano()%1e9))
			if !two {
				b = a
			}
			devicesAtOnce(t, a, b)
		})
	}
}

func devicesAtOnce(t *testing.T, a, b *Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := a.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	const nChats = 60
	var removed atomic.Int64
	drain := func(s *Store) error {
		in, err := s.Inbox(ctx, &pb.InboxRequest{User: "bob", Limit: 10})
		if err != nil || len(in.Entries) == 0 {
			return err
		}
		res, err := s.Confirm(ctx, &pb.ConfirmRequest{User: "bob", Cursor: in.Entries[len(in.Entries)-1].Cursor})
		if err == nil {
			removed.Add(res.Removed)
		}
		return err
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Go(func() {
		defer done.Store(true)
		for i := range nChats {
			if _, err := a.Append(ctx, []*pb.AppendRequest{rfChat("alice", "big", fmt.Sprintf("d%02d", i))}); err != nil {
				errs <- err
				return
			}
		}
	})
	for _, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for !done.Load() {
				if err := drain(s); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range nChats {
		before := removed.Load()
		if err := drain(b); err != nil {
			t.Fatal(err)
		}
		if removed.Load() == before {
			break
		}
	}
	if got := removed.Load(); got != nChats {
		t.Errorf("entries confirmed in all: %d, want %d (one per chat)", got, nChats)
	}
}

// TestReadFanoutPullLock: a pull waits while another process holds the user's pull lock,
// and takes over a lock older than pullLease (its holder died); the lock is released; a
// holder whose lock was taken over fails to renew it and does not release the new one.
func TestReadFanoutPullLock(t *testing.T) {
	s := opener(t)(t, fmt.Sprintf("rflock%d", time.Now().UnixNano()%1e9)).(*Store)
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []*pb.AppendRequest{rfChat("alice", "big", "k1")}); err != nil {
		t.Fatal(err)
	}
	// A dead process's lock: taken over.
	stale := time.Now().Add(-2 * pullLease).UnixMilli()
	if _, err := s.pullsColl().InsertOne(ctx, bson.D{{Key: "_id", Value: "bob"}, {Key: "tok", Value: "dead"}, {Key: "at", Value: stale}}); err != nil {
		t.Fatal(err)
	}
	if got := pendingIDs(t, s, "bob"); !slices.Equal(got, []string{"k1"}) {
		t.Fatalf("bob's inbox past a dead lock: %v, want [k1]", got)
	}
	if n, err := s.pullsColl().CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("locks left after the pull: %d (%v)", n, err)
	}
	// A live lock: the pull waits for its release.
	if _, err := s.Append(ctx, []*pb.AppendRequest{rfChat("alice", "big", "k2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pullsColl().InsertOne(ctx, bson.D{{Key: "_id", Value: "bob"}, {Key: "tok", Value: "live"}, {Key: "at", Value: time.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	var released atomic.Bool
	go func() {
		time.Sleep(300 * time.Millisecond)
		released.Store(true)
		_, _ = s.pullsColl().DeleteOne(ctx, bson.D{{Key: "_id", Value: "bob"}})
	}()
	got := pendingIDs(t, s, "bob")
	if !released.Load() {
		t.Errorf("the pull did not wait for the live lock")
	}
	if !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("bob's inbox after the lock was released: %v, want [k1 k2]", got)
	}
	// A holder whose lock was taken over gives up at its next renewal.
	lock, err := s.lockPull(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pullsColl().UpdateOne(ctx, bson.D{{Key: "_id", Value: "carol"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "tok", Value: "other"}}}}); err != nil {
		t.Fatal(err)
	}
	lock.at = time.Time{} // due for renewal
	if err := lock.renew(ctx); err == nil {
		t.Errorf("renewal of a lock taken over succeeded")
	}
	lock.release(ctx)
	if n, err := s.pullsColl().CountDocuments(ctx, bson.D{{Key: "_id", Value: "carol"}, {Key: "tok", Value: "other"}}); err != nil || n != 1 {
		t.Errorf("the release of a lock taken over removed the new holder's: %d (%v)", n, err)
	}
}
