package storagemongo

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
	"github.com/timgw/timgw/plugins/storage/storagetest"
)

// TestHistoryLatency measures a 50-message history page in a database of
// TIMGW_BENCH_HISTORY messages over up to 1,000 conversations, on the server in
// TIMGW_MONGO_URI. The database (timgwbench_<n>) is built once and kept.
//
//	TIMGW_BENCH_HISTORY=100000 TIMGW_MONGO_URI=mongodb://127.0.0.1:27027/ go test -run HistoryLatency -v ./plugins/storage-mongo/
func TestHistoryLatency(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TIMGW_BENCH_HISTORY"))
	uri := os.Getenv(uriEnv)
	if n <= 0 || uri == "" {
		t.Skip("set TIMGW_BENCH_HISTORY and TIMGW_MONGO_URI to measure history pages in a large store")
	}
	convs := max(1, min(1000, n/200)) // 1M: 1,000 conversations of 1,000 messages
	cfg, _ := json.Marshal(Config{URI: uri, Database: "timgwbench_" + strconv.Itoa(n) + "_" + strconv.Itoa(convs), Timeout: "600s"})
	s := &Store{}
	ctx := context.Background()
	if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	have, err := s.msgs.EstimatedDocumentCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if have < int64(n) {
		_ = s.Drop(ctx)
		_ = s.ensureIndexes(ctx)
		d, err := storagetest.Populate(ctx, s, convs, n, 1000)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("populated %d messages in %v (%.0f msgs/s)", n, d, float64(n)/d.Seconds())
	}
	p50, p99, worst, err := storagetest.HistoryLatency(ctx, s, convs, n/convs, 50, 100)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("50-message page at %d messages: p50 %v, p99 %v, max %v (100 queries)", n, p50, p99, worst)
}

// BenchmarkAppend measures chats stored per second from 64 concurrent writers, one chat
// per call through the SDK's gRPC server and batching client (as the gateway writes), on
// the server in TIMGW_MONGO_URI.
//
//	TIMGW_MONGO_URI=mongodb://127.0.0.1:27027/ go test -run '^$' -bench Append -benchtime 5000x ./plugins/storage-mongo/
func BenchmarkAppend(b *testing.B) {
	uri := os.Getenv(uriEnv)
	if uri == "" {
		b.Skipf("%s is not set: no MongoDB to measure", uriEnv)
	}
	cfg, _ := json.Marshal(Config{URI: uri, Database: "timgwbench_append_" + strconv.Itoa(b.N), Timeout: "60s"})
	s := &Store{}
	ctx := context.Background()
	if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
		b.Fatal(err)
	}
	_ = s.Drop(ctx)
	if err := s.ensureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	c := storagetest.Serve(b, s)
	defer func() {
		_ = s.Drop(ctx)
		_ = c.Close()
	}()
	storagetest.BenchmarkAppend(b, c, 64)
}
