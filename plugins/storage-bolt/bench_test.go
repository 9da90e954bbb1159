package storagebolt

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
	"github.com/timgw/timgw/plugins/storage/storagetest"
)

// BenchmarkAppend measures stored chats per second through the plugin transport (the
// SDK's gRPC server and batching client over a Unix socket) into bbolt with fsync, from
// 512 concurrent writers (-cpu 1: parallelism is 512 goroutines per GOMAXPROCS).
//
//	go test -run XXX -bench Append -benchtime 100000x ./plugins/storage-bolt/
func BenchmarkAppend(b *testing.B) {
	cfg, _ := json.Marshal(Config{Dir: b.TempDir()})
	s := &Store{}
	if _, err := s.Open(context.Background(), &pb.OpenRequest{Config: cfg}); err != nil {
		b.Fatal(err)
	}
	st := storagetest.Serve(b, s)
	defer st.Close()
	storagetest.BenchmarkAppend(b, st, 500)
}

// TestHistoryLatency measures a 50-message history page in a store of
// TIMGW_BENCH_HISTORY messages (e.g. 1000000) over 1,000 conversations. The store is
// built once in $TIMGW_BENCH_DIR (default the system's temporary directory) and reused.
//
//	TIMGW_BENCH_HISTORY=1000000 go test -run HistoryLatency -v ./plugins/storage-bolt/
func TestHistoryLatency(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TIMGW_BENCH_HISTORY"))
	if n <= 0 {
		t.Skip("set TIMGW_BENCH_HISTORY=1000000 to measure history pages in a large store")
	}
	convs := max(1, min(1000, n/200)) // 1M: 1,000 conversations of 1,000 messages
	base := os.Getenv("TIMGW_BENCH_DIR")
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "timgw-bench-bolt-"+strconv.Itoa(n)+"-"+strconv.Itoa(convs))
	_, statErr := os.Stat(filepath.Join(dir, FileName))
	cfg, _ := json.Marshal(Config{Dir: dir, NoSync: true})
	s := &Store{}
	ctx := context.Background()
	if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if statErr != nil {
		d, err := storagetest.Populate(ctx, s, convs, n, 2000)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatal(err)
		}
		t.Logf("populated %d messages in %v (%.0f msgs/s, no fsync)", n, d, float64(n)/d.Seconds())
	}
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
		t.Logf("store: %s, %d MiB", dir, fi.Size()>>20)
	}
	p50, p99, worst, err := storagetest.HistoryLatency(ctx, s, convs, n/convs, 50, 5000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("50-message page at %d messages: p50 %v, p99 %v, max %v (5000 queries, in process)", n, p50, p99, worst)
	remote := storagetest.Serve(t, s) // as the gateway asks: gRPC over a Unix socket
	defer remote.Close()
	p50, p99, worst, err = storagetest.HistoryLatency(ctx, remote, convs, n/convs, 50, 5000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("50-message page at %d messages: p50 %v, p99 %v, max %v (5000 queries, through gRPC)", n, p50, p99, worst)
}

// BenchmarkAppendGroup10k measures storing one chat to a 10,000-member group through
// the plugin transport, with fsync: write fan-out (the chat carries its 9,999 receivers
// and gets 9,999 inbox entries) against read fan-out (stored once, no receivers). Chats
// are sent one at a time (a sender waits for its ack): ack-us/op is the latency of one,
// ns/op also counts the applier's work (the inbox entries written into bbolt) until all
// is applied.
//
//	go test -run XXX -bench AppendGroup10k -benchtime 50x ./plugins/storage-bolt/
func BenchmarkAppendGroup10k(b *testing.B) {
	const members = 10000
	receivers := make([]string, 0, members-1)
	for i := 1; i < members; i++ {
		receivers = append(receivers, "u"+strconv.Itoa(i))
	}
	for _, mode := range []string{"write", "read"} {
		b.Run(mode, func(b *testing.B) {
			cfg, _ := json.Marshal(Config{Dir: b.TempDir()})
			s := &Store{}
			ctx := context.Background()
			if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
				b.Fatal(err)
			}
			st := storagetest.Serve(b, s)
			defer st.Close()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				m := &pb.Message{Conv: storage.GroupConv("big"), Id: "m" + strconv.Itoa(i), From: "u0", GroupId: "big",
					ChatType: storage.ChatTypeGroup, CreateTime: 1, ServerTime: 2, Content: "hello, everyone"}
				req := &pb.AppendRequest{Message: m}
				if mode == "read" {
					m.ReadFanout = true
				} else {
					req.Receivers = receivers
				}
				res, err := st.Append(ctx, []*pb.AppendRequest{req})
				if err != nil || res[0].Error != "" {
					b.Fatalf("append: %v %v", err, res)
				}
			}
			acked := time.Since(start)
			// The applier's work (9,999 inbox puts per chat, or none) counts too: wait for it.
			if err := s.syncReads(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(acked.Microseconds())/float64(b.N), "ack-us/op")
		})
	}
}

// BenchmarkReadFanoutPull measures a member's first offline query after 200 read
// fan-out chats of a 10,000-member group: the pull of the 200 chats into its inbox (one
// bbolt transaction with fsync) and the 200-entry answer, in process. Each op is another
// member.
//
//	go test -run XXX -bench ReadFanoutPull -benchtime 1000x ./plugins/storage-bolt/
func BenchmarkReadFanoutPull(b *testing.B) {
	const members, chats = 10000, 200
	cfg, _ := json.Marshal(Config{Dir: b.TempDir()})
	s := &Store{}
	ctx := context.Background()
	if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	all := make([]string, members)
	for i := range all {
		all[i] = "u" + strconv.Itoa(i)
	}
	if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: all}); err != nil {
		b.Fatal(err)
	}
	for i := range chats {
		m := &pb.Message{Conv: storage.GroupConv("big"), Id: "m" + strconv.Itoa(i), From: "u0", GroupId: "big",
			ChatType: storage.ChatTypeGroup, CreateTime: 1, ServerTime: 2, Content: "hello, everyone", ReadFanout: true}
		if _, err := s.Append(ctx, []*pb.AppendRequest{{Message: m}}); err != nil {
			b.Fatal(err)
		}
	}
	if b.N >= members {
		b.Fatalf("at most %d ops (one per member)", members-1)
	}
	b.ResetTimer()
	for i := range b.N {
		in, err := s.Inbox(ctx, &pb.InboxRequest{User: all[1+i]})
		if err != nil || len(in.Entries) != chats {
			b.Fatalf("inbox of %s: %d entries, %v", all[1+i], len(in.GetEntries()), err)
		}
	}
}

// BenchmarkAppendApplied measures the plugin's own work per chat, in process and without
// fsync: Append in batches of 500 and the applier writing them into bbolt (waited for).
// "new" sends every chat to a conversation of its own (each one is a conversation's first
// message: the expiry index gets an entry per chat); "10k" cycles through 10,000
// conversations (one seek per conversation and applied generation).
//
//	go test -run XXX -bench AppendApplied/10k -benchtime 200000x ./plugins/storage-bolt/
//	go test -run XXX -bench AppendApplied/new -benchtime 20000x ./plugins/storage-bolt/
func BenchmarkAppendApplied(b *testing.B) {
	for _, mode := range []string{"new", "10k"} {
		b.Run(mode, func(b *testing.B) {
			cfg, _ := json.Marshal(Config{Dir: b.TempDir(), NoSync: true})
			s := &Store{}
			ctx := context.Background()
			if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			reqs := make([]*pb.AppendRequest, 0, 500)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c := i
				if mode == "10k" {
					c = i % 10000
				}
				u, v := "u"+strconv.Itoa(c), "v"+strconv.Itoa(c)
				reqs = append(reqs, &pb.AppendRequest{Message: &pb.Message{Conv: storage.PrivateConv(u, v),
					Id: "m" + strconv.Itoa(i), From: u, To: v, ChatType: storage.ChatTypePrivate,
					CreateTime: int64(i + 1), ServerTime: int64(i + 1), Content: "hello"}, Receivers: []string{v}})
				if len(reqs) == cap(reqs) || i == b.N-1 {
					if _, err := s.Append(ctx, reqs); err != nil {
						b.Fatal(err)
					}
					reqs = reqs[:0]
				}
			}
			if err := s.syncReads(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
