package storagetest

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Populate appends total chats to b, spread over convs private conversations ("u<i>" to
// "peer"), in batches of batch, and returns the time it took. Content is 100 bytes.
func Populate(ctx context.Context, b storage.Backend, convs, total, batch int) (time.Duration, error) {
	start := time.Now()
	content := fmt.Sprintf("%0100d", 0)
	reqs := make([]*pb.AppendRequest, 0, batch)
	for i := 0; i < total; i++ {
		u := fmt.Sprintf("u%d", i%convs)
		reqs = append(reqs, &pb.AppendRequest{
			Message: &pb.Message{Conv: storage.PrivateConv(u, "peer"), Id: fmt.Sprintf("m%d", i), From: u, To: "peer",
				ChatType: storage.ChatTypePrivate, CreateTime: int64(i), ServerTime: int64(i), Content: content},
			Receivers: []string{"peer"},
		})
		if len(reqs) == batch || i == total-1 {
			res, err := b.Append(ctx, reqs)
			if err != nil {
				return 0, err
			}
			for _, r := range res {
				if r.Error != "" {
					return 0, fmt.Errorf("append: %s", r.Error)
				}
			}
			reqs = reqs[:0]
		}
	}
	return time.Since(start), nil
}

// HistoryLatency runs n history queries of a page of size messages (the newest page
// before a random point, as a client scrolling back does) over convs conversations made
// by Populate, and returns the p50, p99 and max latency.
func HistoryLatency(ctx context.Context, b storage.Backend, convs, perConv, size, n int) (p50, p99, worst time.Duration, err error) {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		conv := storage.PrivateConv(fmt.Sprintf("u%d", (i*7919)%convs), "peer")
		before := int64(perConv - (i*104729)%max(perConv-size, 1))
		t := time.Now()
		res, err := b.History(ctx, &pb.HistoryRequest{Conv: conv, BeforeSeq: before, Limit: int32(size), Reverse: true})
		lat = append(lat, time.Since(t))
		if err != nil {
			return 0, 0, 0, err
		}
		if len(res.Messages) != size {
			return 0, 0, 0, fmt.Errorf("history page of %d messages, want %d", len(res.Messages), size)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], nil
}

// BenchmarkAppend measures chats stored per second through b from par concurrent
// writers, one chat per call (as the gateway's Deliverer writes). Report it with
// b.ReportMetric.
func BenchmarkAppend(tb *testing.B, b storage.Backend, par int) {
	type one interface {
		AppendOne(ctx context.Context, r *pb.AppendRequest) (*pb.AppendResult, error)
	}
	ctx := context.Background()
	tb.SetParallelism(par)
	tb.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	var seq atomicCounter
	tb.RunParallel(func(p *testing.PB) {
		for p.Next() {
			i := seq.next()
			u := fmt.Sprintf("w%d", i%1000)
			to := "r" + u // 1,000 conversations, 1,000 receivers: keys all over the store
			r := &pb.AppendRequest{Message: &pb.Message{Conv: storage.PrivateConv(u, to), Id: fmt.Sprintf("b%d", i),
				From: u, To: to, ChatType: storage.ChatTypePrivate, Content: "benchmark chat of about sixty-four bytes of content, padded"},
				Receivers: []string{to}}
			var err error
			if o, ok := b.(one); ok {
				_, err = o.AppendOne(ctx, r)
			} else {
				_, err = b.Append(ctx, []*pb.AppendRequest{r})
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
	})
	tb.ReportMetric(float64(tb.N)/time.Since(start).Seconds(), "msgs/s")
	tb.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(tb.N), "cpu-us/msg")
}

// processCPU is the CPU time (user and system) this process used so far: a backend served
// in process (Serve) counts both sides of the stream and the store's background work.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int64 { return c.n.Add(1) }
