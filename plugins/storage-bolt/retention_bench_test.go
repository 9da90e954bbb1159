package storagebolt

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
	"github.com/timgw/timgw/plugins/storage/storagetest"
)

// TestExpireLatency measures expiring every message of TIMGW_BENCH_EXPIRE private
// conversations (e.g. 1000) of 20 messages each, in batches of 1000 as the janitor does,
// and a pass that finds nothing due.
//
//	TIMGW_BENCH_EXPIRE=1000 go test -run ExpireLatency -v ./plugins/storage-bolt/
func TestExpireLatency(t *testing.T) {
	convs, _ := strconv.Atoi(os.Getenv("TIMGW_BENCH_EXPIRE"))
	if convs <= 0 {
		t.Skip("set TIMGW_BENCH_EXPIRE=1000 to measure expiry")
	}
	total := convs * 20
	s := populated(t, convs, total)
	expire := func(before int64) (*pb.ExpireResponse, time.Duration) { return timedExpire(t, s, before) }
	first, _ := expire(1) // only message 0 is older than 1 ms (and the log is applied first)
	if none, idle := expire(1); none.Removed == 0 {
		t.Logf("a pass with nothing due over %d conversations: %v", convs, idle)
	}
	var ds []time.Duration
	removed, inbox := first.Removed, first.InboxRemoved
	start := time.Now()
	for {
		res, d := expire(int64(total))
		ds, removed, inbox = append(ds, d), removed+res.Removed, inbox+res.InboxRemoved
		if !res.More {
			break
		}
	}
	all := time.Since(start)
	if removed != int64(total) || inbox != int64(total) {
		t.Fatalf("removed %d messages and %d inbox entries, want %d of each", removed, inbox, total)
	}
	slices.Sort(ds)
	t.Logf("expire %d messages of %d conversations (one inbox of %d entries): %v in %d batches of 1000, p50 %v, max %v per batch (in process)",
		total, convs, total, all, len(ds), ds[len(ds)/2], ds[len(ds)-1])
}

// populated opens a store (no fsync) in a temporary directory, closed when t ends, with
// total chats of convs private conversations to "peer" (storagetest.Populate).
func populated(t *testing.T, convs, total int) *Store {
	t.Helper()
	cfg, _ := json.Marshal(Config{Dir: t.TempDir(), NoSync: true})
	s := &Store{}
	if _, err := s.Open(context.Background(), &pb.OpenRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := storagetest.Populate(context.Background(), s, convs, total, 2000); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExpireFewDue measures an expiry pass over TIMGW_BENCH_EXPIRE_CONVS private
// conversations (e.g. 100000) of 2 chats each, each user with a small inbox, when only
// 100 chats are due per pass (the janitor's steady state), and a pass with nothing due.
//
//	TIMGW_BENCH_EXPIRE_CONVS=100000 go test -run ExpireFewDue -v ./plugins/storage-bolt/
func TestExpireFewDue(t *testing.T) {
	convs, _ := strconv.Atoi(os.Getenv("TIMGW_BENCH_EXPIRE_CONVS"))
	if convs <= 0 {
		t.Skip("set TIMGW_BENCH_EXPIRE_CONVS=100000 to measure expiry with few due")
	}
	cfg, _ := json.Marshal(Config{Dir: t.TempDir(), NoSync: true})
	s := &Store{}
	ctx := context.Background()
	if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	// Chat j of conversation i (u<i> to v<i>) has server time j*convs+i+1: the first chats
	// of the conversations are the oldest, in conversation order.
	reqs := make([]*pb.AppendRequest, 0, 2000)
	start := time.Now()
	for j := range 2 {
		for i := range convs {
			u, v := "u"+strconv.Itoa(i), "v"+strconv.Itoa(i)
			reqs = append(reqs, &pb.AppendRequest{Message: &pb.Message{Conv: storage.PrivateConv(u, v),
				Id: "m" + strconv.Itoa(j), From: u, To: v, ChatType: storage.ChatTypePrivate,
				CreateTime: int64(j*convs + i + 1), ServerTime: int64(j*convs + i + 1), Content: "hello"},
				Receivers: []string{v}})
			if len(reqs) == cap(reqs) || i == convs-1 {
				if _, err := s.Append(ctx, reqs); err != nil {
					t.Fatal(err)
				}
				reqs = reqs[:0]
			}
		}
	}
	t.Logf("stored %d chats of %d conversations in %v", 2*convs, convs, time.Since(start))
	expire := func(before int64) (*pb.ExpireResponse, time.Duration) { return timedExpire(t, s, before) }
	expire(1) // the log is applied first
	var idle, busy []time.Duration
	for k := 1; k <= 21; k++ {
		res, d := expire(int64(100*k + 1))
		if res.Removed != 100 || res.More {
			t.Fatalf("pass %d: %v, want 100 removed and no more", k, res)
		}
		busy = append(busy, d)
		if res, d = expire(int64(100*k + 1)); res.Removed != 0 {
			t.Fatalf("pass %d again: %v, want nothing", k, res)
		}
		idle = append(idle, d)
	}
	slices.Sort(idle)
	slices.Sort(busy)
	t.Logf("expiry pass over %d conversations removing 100 chats: p50 %v, max %v; with nothing due: p50 %v, max %v (21 passes each, in process)",
		convs, busy[len(busy)/2], busy[len(busy)-1], idle[len(idle)/2], idle[len(idle)-1])
}

// timedExpire runs one Expire pass of private chats older than before (batches of 1,000)
// and returns its answer and how long it took.
func timedExpire(t *testing.T, s *Store, before int64) (*pb.ExpireResponse, time.Duration) {
	t.Helper()
	start := time.Now()
	res, err := s.Expire(context.Background(), &pb.ExpireRequest{ChatType: storage.ChatTypePrivate, BeforeMs: before, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return res, time.Since(start)
}
