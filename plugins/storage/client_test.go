package storage_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
	"github.com/timgw/timgw/plugins/storage/storagetest"
)

// counting is a Backend whose Append numbers chats in the order it gets them, after
// waiting for gate (when set).
type counting struct {
	storage.Backend // only Append and Close are called
	n               atomic.Int64
	gate            chan struct{}
	batches         atomic.Int64
}

func (b *counting) Append(ctx context.Context, reqs []*pb.AppendRequest) ([]*pb.AppendResult, error) {
	if b.gate != nil {
		<-b.gate
	}
	b.batches.Add(1)
	out := make([]*pb.AppendResult, len(reqs))
	for i := range reqs {
		out[i] = &pb.AppendResult{Seq: b.n.Add(1)}
	}
	return out, nil
}

func (b *counting) Close() error { return nil }

type asyncAppender interface {
	AppendAsync(r *pb.AppendRequest, timeout time.Duration, done storage.AppendDone)
}

func chatReq(id string) *pb.AppendRequest {
	return &pb.AppendRequest{Message: &pb.Message{Id: id, From: "a", To: "b", Conv: storage.PrivateConv("a", "b")}}
}

// Chats queued with AppendAsync from one goroutine reach the plugin in that order, each
// done is called once with its own result, and many chats share a plugin commit.
func TestAppendAsyncOrder(t *testing.T) {
	b := &counting{}
	c := storagetest.Serve(t, b).(asyncAppender)
	const n = 5000
	got := make([]int64, n)
	var calls atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		c.AppendAsync(chatReq("m"), time.Minute, func(res *pb.AppendResult, err error) {
			defer wg.Done()
			calls.Add(1)
			if err != nil {
				t.Errorf("chat %d: %v", i, err)
				return
			}
			got[i] = res.Seq
		})
	}
	wg.Wait()
	for i, seq := range got {
		if seq != int64(i+1) {
			t.Fatalf("chat %d stored as number %d, want %d (order lost)", i, seq, i+1)
		}
	}
	if calls.Load() != n {
		t.Fatalf("done called %d times for %d chats", calls.Load(), n)
	}
	t.Logf("%d chats in %d plugin commits", n, b.batches.Load())
	if b.batches.Load() >= n {
		t.Errorf("%d commits for %d chats queued at once: nothing shared a commit", b.batches.Load(), n)
	}
}

// A chat the plugin does not answer in time gets an error wrapping
// context.DeadlineExceeded; the answer that comes later is dropped (done is called once),
// and the stream goes on working.
func TestAppendAsyncTimeout(t *testing.T) {
	b := &counting{gate: make(chan struct{})}
	c := storagetest.Serve(t, b).(asyncAppender)
	type outcome struct {
		res *pb.AppendResult
		err error
	}
	ch := make(chan outcome, 4)
	start := time.Now()
	c.AppendAsync(chatReq("slow"), 100*time.Millisecond, func(res *pb.AppendResult, err error) { ch <- outcome{res, err} })
	first := <-ch
	if !errors.Is(first.err, context.DeadlineExceeded) {
		t.Fatalf("hung plugin: got %v, %v; want an error wrapping context.DeadlineExceeded", first.res, first.err)
	}
	t.Logf("timed out after %v (timeout 100ms, checked every 50ms)", time.Since(start).Round(time.Millisecond))
	close(b.gate) // the plugin answers now: the late answer is dropped
	c.AppendAsync(chatReq("next"), time.Minute, func(res *pb.AppendResult, err error) { ch <- outcome{res, err} })
	next := <-ch
	if next.err != nil || next.res.GetSeq() != 2 {
		t.Fatalf("chat after the timeout: %v, %v; want stored as number 2", next.res, next.err)
	}
	select {
	case x := <-ch:
		t.Fatalf("done called again: %v, %v", x.res, x.err)
	case <-time.After(100 * time.Millisecond):
	}
}

// When the plugin goes away, queued and in-flight chats fail with ErrUnavailable.
func TestAppendAsyncBrokenStream(t *testing.T) {
	b := &counting{gate: make(chan struct{})}
	be := storagetest.Serve(t, b)
	c := be.(asyncAppender)
	errs := make(chan error, 3)
	for range 3 {
		c.AppendAsync(chatReq("x"), time.Minute, func(_ *pb.AppendResult, err error) { errs <- err })
	}
	time.Sleep(50 * time.Millisecond) // on their way
	go func() { _ = be.Close() }()
	for range 3 {
		if err := <-errs; !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("chat on a closed stream: %v, want ErrUnavailable", err)
		}
	}
	close(b.gate)
}
