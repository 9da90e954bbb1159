package storagebolt

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// TestConversationsLatency measures a 20-conversation page of the list of a user with
// TIMGW_BENCH_CONVS private conversations (e.g. 1000) of 20 unread messages each, and a
// receipt (SetCursor) in that store.
//
//	TIMGW_BENCH_CONVS=1000 go test -run ConversationsLatency -v ./plugins/storage-bolt/
func TestConversationsLatency(t *testing.T) {
	convs, _ := strconv.Atoi(os.Getenv("TIMGW_BENCH_CONVS"))
	if convs <= 0 {
		t.Skip("set TIMGW_BENCH_CONVS=1000 to measure conversation lists")
	}
	s := populated(t, convs, convs*20)
	ctx := context.Background()
	measure := func(what string, n int, fn func(i int) error) {
		t.Helper()
		ds := make([]time.Duration, n)
		for i := range ds {
			start := time.Now()
			if err := fn(i); err != nil {
				t.Fatal(err)
			}
			ds[i] = time.Since(start)
		}
		slices.Sort(ds)
		t.Logf("%s (%d conversations, %d messages): p50 %v, p99 %v (%d calls, in process)", what, convs, convs*20, ds[n/2], ds[n*99/100], n)
	}
	measure("20-conversation page", 500, func(int) error {
		res, err := s.Conversations(ctx, &pb.ConversationsRequest{User: "peer", Limit: 20})
		if err == nil && (len(res.Conversations) != 20 || res.Conversations[0].Unread != 20) {
			t.Fatalf("page: %d conversations, first with %d unread", len(res.Conversations), res.Conversations[0].Unread)
		}
		return err
	})
	measure("receipt (read, removes 20 inbox entries)", min(500, convs), func(i int) error {
		_, err := s.SetCursor(ctx, &pb.SetCursorRequest{User: "peer", Conv: storage.PrivateConv("u"+strconv.Itoa(i), "peer"), Read: 20})
		return err
	})
}
