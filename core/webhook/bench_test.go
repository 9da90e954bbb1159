package webhook

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkEmit is what a chat pays for its event: the enqueue (the gateway calls Emit
// before the ack). The endpoint answers at once; events the spool could not keep up
// with are dropped, reported as dropped/op.
func BenchmarkEmit(b *testing.B) {
	rc := newReceiver(b, nil)
	d, err := New(Options{Config: testConfig(rc.URL), Dir: filepath.Join(b.TempDir(), "q"), Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(context.Background()) }) // before the receiver's Close
	msg := &Message{ID: "m1", From: "alice", To: "bob", ChatType: 2, Content: "hello", CreateTime: time.Now().UnixMilli(), Seq: 1}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Emit(Event{Type: TypeMessageOffline, Message: msg, OfflineUsers: []string{"bob"}})
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(d.dropped.Load())/float64(b.N), "dropped/op")
}

// BenchmarkSpoolWrite is the cost per event of persisting a batch of 100 (one fsync).
func BenchmarkSpoolWrite(b *testing.B) {
	sp, err := openSpool(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, 100)
	for i := range bodies {
		bodies[i] = []byte(`{"id":"x-` + strconv.Itoa(i) + `","type":"message.offline","time":1,"node":"","message":{"id":"m","from":"a","to":"b","chatType":2,"msgType":0,"content":"hello","createTime":1,"seq":1},"offline_users":["b"]}`)
	}
	b.ResetTimer()
	for range b.N {
		seg, err := sp.write(bodies)
		if err != nil {
			b.Fatal(err)
		}
		seg.left = 1
		_ = sp.release(seg)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bodies)), "ns/event")
}

// BenchmarkDelivered is the end-to-end cost of an event: emitted, persisted, POSTed to a
// local receiver that answers 200 at once, and removed from the queue. Events go in
// chunks no larger than the channel, so that none is dropped.
func BenchmarkDelivered(b *testing.B) {
	rc := newReceiver(b, nil)
	d, err := New(Options{Config: testConfig(rc.URL), Dir: filepath.Join(b.TempDir(), "q"), Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(context.Background()) })
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(b.N-sent, 1000)
		for range n {
			d.Emit(Event{Type: TypeUserOnline, User: "u"})
		}
		sent += n
		for d.delivered.Load() < uint64(sent) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	if d.dropped.Load() != 0 || d.failed.Load() != 0 {
		b.Fatalf("dropped %d, failed %d", d.dropped.Load(), d.failed.Load())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
