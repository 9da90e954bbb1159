package lua

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCounters(t *testing.T) {
	var now atomic.Int64
	c := newCounters(now.Load)
	if got := c.Incr("a", 1, time.Second); got != 1 {
		t.Fatalf("first incr %d", got)
	}
	if got := c.Incr("a", 2, time.Minute); got != 3 {
		t.Fatalf("second incr %d", got)
	}
	now.Store(int64(999 * time.Millisecond))
	if got := c.Get("a"); got != 3 {
		t.Fatalf("before expiry %d", got)
	}
	now.Store(int64(time.Second)) // the window of the first incr (1s) is over
	if got := c.Get("a"); got != 0 {
		t.Fatalf("after expiry %d", got)
	}
	if got := c.Incr("a", 1, time.Second); got != 1 {
		t.Fatalf("incr after expiry %d", got)
	}
	long := strings.Repeat("x", 10000)
	c.Incr(long, 5, time.Second)
	if c.Get(long) != 5 || c.Get(long+"y") != 0 {
		t.Error("long keys")
	}
	c.IncrSub("ab", "c", 1, time.Second)
	c.IncrSub("a", "bc", 2, time.Second)
	if c.GetSub("ab", "c") != 1 || c.GetSub("a", "bc") != 2 {
		t.Error("sub-keys are not a concatenation: (ab,c) and (a,bc) must differ")
	}
	c.Delete("a")
	if c.Get("a") != 0 {
		t.Error("delete")
	}
	now.Store(int64(10 * time.Second))
	c.Sweep()
	if n := c.Len(); n != 0 {
		t.Errorf("%d counters after sweep", n)
	}
}

func TestCountersConcurrent(t *testing.T) {
	c := NewCounters()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				c.Incr("shared", 1, time.Minute)
			}
		}()
	}
	wg.Wait()
	if got := c.Get("shared"); got != 8000 {
		t.Errorf("shared = %d, want 8000", got)
	}
}
