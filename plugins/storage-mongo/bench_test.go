package storagemongo

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/timgw/timgw/plugins/storage"
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

// BenchmarkLargeGroup measures one chat to a group of 10,000 members stored through the
// SDK's gRPC server, as the gateway stores it: write fan-out (the chat with 9,999
// receivers, one inbox entry each) against read fan-out (flagged, no receivers), and
// what read fan-out costs a member instead: an Inbox that pulls one new chat. On the
// server in TIMGW_MONGO_URI.
//
//	TIMGW_MONGO_URI=mongodb://127.0.0.1:27027/ go test -run '^$' -bench LargeGroup -benchtime 5x ./plugins/storage-mongo/
func BenchmarkLargeGroup(b *testing.B) {
	uri := os.Getenv(uriEnv)
	if uri == "" {
		b.Skipf("%s is not set: no MongoDB to measure", uriEnv)
	}
	const members = 10000
	ctx := context.Background()
	open := func(b *testing.B, name string) (*Store, storage.Backend) {
		cfg, _ := json.Marshal(Config{URI: uri, Database: "timgwbench_group_" + name, Timeout: "600s"})
		s := &Store{}
		if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
			b.Fatal(err)
		}
		_ = s.Drop(ctx)
		for _, ensure := range []func(context.Context) error{s.ensureIndexes, s.ensureReceiptIndexes, s.ensureRetentionIndexes, s.ensureReadFanoutIndexes} {
			if err := ensure(ctx); err != nil {
				b.Fatal(err)
			}
		}
		ids := make([]string, members)
		for i := range ids {
			ids[i] = "m" + strconv.Itoa(i)
		}
		if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: ids}); err != nil {
			b.Fatal(err)
		}
		c := storagetest.Serve(b, s)
		b.Cleanup(func() {
			_ = s.Drop(ctx)
			_ = c.Close()
		})
		return s, c
	}
	chat := func(i int, rf bool) *pb.AppendRequest {
		r := &pb.AppendRequest{Message: &pb.Message{Conv: storage.GroupConv("big"), Id: "c" + strconv.Itoa(i), From: "m0",
			GroupId: "big", ChatType: storage.ChatTypeGroup, CreateTime: int64(i), ServerTime: int64(i),
			Content: "hello, large group", ReadFanout: rf}}
		if !rf {
			for j := 1; j < members; j++ {
				r.Receivers = append(r.Receivers, "m"+strconv.Itoa(j))
			}
		}
		return r
	}
	appendOne := func(b *testing.B, c storage.Backend, i int, rf bool) {
		res, err := c.Append(ctx, []*pb.AppendRequest{chat(i, rf)})
		if err != nil || res[0].Error != "" {
			b.Fatalf("append: %v %v", err, res)
		}
	}
	for _, mode := range []struct {
		name string
		rf   bool
	}{{"write-fanout", false}, {"read-fanout", true}} {
		b.Run(mode.name, func(b *testing.B) {
			_, c := open(b, mode.name)
			b.ResetTimer()
			for i := range b.N {
				appendOne(b, c, i, mode.rf)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/chat")
		})
	}
	b.Run("read-fanout-pull", func(b *testing.B) {
		_, c := open(b, "pull")
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			appendOne(b, c, i, true)
			b.StartTimer()
			in, err := c.Inbox(ctx, &pb.InboxRequest{User: "m1", Limit: 100}) // one new chat to pull
			if err != nil || len(in.Entries) == 0 {
				b.Fatalf("inbox: %v, %v", in, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/inbox")
	})
}

// BenchmarkInbox measures a page of 100 pending entries of a user who is a member of 5
// small groups (nothing to pull: what the read fan-out pull adds to every Inbox), on the
// server in TIMGW_MONGO_URI.
//
//	TIMGW_MONGO_URI=mongodb://127.0.0.1:27027/ go test -run '^$' -bench 'Inbox$' -benchtime 200x ./plugins/storage-mongo/
func BenchmarkInbox(b *testing.B) {
	uri := os.Getenv(uriEnv)
	if uri == "" {
		b.Skipf("%s is not set: no MongoDB to measure", uriEnv)
	}
	cfg, _ := json.Marshal(Config{URI: uri, Database: "timgwbench_inbox", Timeout: "60s"})
	s := &Store{}
	ctx := context.Background()
	if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = s.Drop(ctx)
		_ = s.Close()
	}()
	for g := range 5 {
		if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "g" + strconv.Itoa(g), Members: []string{"alice", "bob"}}); err != nil {
			b.Fatal(err)
		}
	}
	{
		var reqs []*pb.AppendRequest
		for i := range 100 {
			reqs = append(reqs, &pb.AppendRequest{Message: &pb.Message{Conv: storage.PrivateConv("alice", "bob"), Id: "p" + strconv.Itoa(i),
				From: "alice", To: "bob", ChatType: storage.ChatTypePrivate, CreateTime: 1, ServerTime: 1, Content: "hi"},
				Receivers: []string{"bob"}})
		}
		if _, err := s.Append(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		in, err := s.Inbox(ctx, &pb.InboxRequest{User: "bob", Limit: 100})
		if err != nil || len(in.Entries) != 100 {
			b.Fatalf("inbox: %d entries, %v", len(in.Entries), err)
		}
	}
}
