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
	ctx := context.Background()
	expire := func(before int64) (*pb.ExpireResponse, time.Duration) {
		start := time.Now()
		res, err := s.Expire(ctx, &pb.ExpireRequest{ChatType: storage.ChatTypePrivate, BeforeMs: before, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return res, time.Since(start)
	}
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
