package store

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/core/router"
)

// connDeliveries records, per sending connection (SkipConn), the chats delivered, in
// the order they were; safe for concurrent deliveries.
type connDeliveries struct {
	mu  sync.Mutex
	got map[uint64][]string
}

func (r *connDeliveries) Deliver(_ context.Context, env router.Envelope) (router.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[env.SkipConn] = append(r.got[env.SkipConn], string(env.Chat.ID))
	return router.Outcome{Connections: 1}, nil
}

// TestDeliverAsyncKeepsOrder pipelines the chats of two connections (none waits for the
// previous one's answer) and kills the plugin with chats in flight: every chat is stored,
// and each connection's chats are answered, delivered once and numbered (seq) in the
// order they were sent, whether deliveries run on the store's callback or on an executor
// (as in a cluster).
func TestDeliverAsyncKeepsOrder(t *testing.T) {
	for _, inline := range []bool{true, false} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) {
			sup := startBolt(t, t.TempDir(), nil)
			rec := &connDeliveries{got: map[uint64][]string{}}
			d := NewDeliverer(sup, rec)
			d.SetExecutor(func(f func()) { go f() }, inline)
			const perConn, killAt = 400, 150
			type answer struct {
				id  string
				seq int64
				err error
			}
			var mu sync.Mutex
			answers := map[uint64][]answer{}
			var wg sync.WaitGroup
			send := func(conn uint64, i int) {
				from, to := "alice", "bob"
				if conn == 2 {
					from, to = "carol", "dave"
				}
				id := fmt.Sprintf("c%d-%04d", conn, i)
				env := privateEnv(from, to, id, "x")
				env.SkipConn = conn
				wg.Add(1)
				d.DeliverAsync(context.Background(), env, func(out router.Outcome, err error) {
					mu.Lock()
					answers[conn] = append(answers[conn], answer{id, out.Seq, err})
					mu.Unlock()
					wg.Done()
				})
			}
			for i := range perConn {
				if i == killAt {
					if err := syscall.Kill(sup.Pid(), syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
				send(1, i)
				send(2, i)
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // let some reach the plugin
				}
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			select {
			case <-finished:
			case <-time.After(60 * time.Second):
				t.Fatal("not every chat was answered")
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for conn := uint64(1); conn <= 2; conn++ {
				as := answers[conn]
				if len(as) != perConn {
					t.Fatalf("conn %d: %d answers, want %d", conn, len(as), perConn)
				}
				for i, a := range as {
					want := fmt.Sprintf("c%d-%04d", conn, i)
					if a.id != want || a.err != nil {
						t.Fatalf("conn %d: answer %d is %s (err %v), want %s stored", conn, i, a.id, a.err, want)
					}
					if i > 0 && a.seq <= as[i-1].seq {
						t.Fatalf("conn %d: %s has seq %d after %s's %d: stored out of order", conn, a.id, a.seq, as[i-1].id, as[i-1].seq)
					}
				}
				got := rec.got[conn]
				if len(got) != perConn {
					t.Fatalf("conn %d: %d deliveries, want %d (each once)", conn, len(got), perConn)
				}
				for i, id := range got {
					if want := fmt.Sprintf("c%d-%04d", conn, i); id != want {
						t.Fatalf("conn %d: delivery %d is %s, want %s", conn, i, id, want)
					}
				}
			}
		})
	}
}
