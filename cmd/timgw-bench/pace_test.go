package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestPacerOfferedExact drives the pacer with a fake clock, on time, with jittered ticks
// and with a long stall: the chats handed out over the window equal rate x window within
// 1% (the pacer makes it exact to one chat).
func TestPacerOfferedExact(t *testing.T) {
	const window = 10 * time.Second
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name  string
		rate  int64
		tick  time.Duration
		next  func(now time.Duration) time.Duration // the time of the tick after now
		stall bool
	}{
		{name: "on time 20k", rate: 20_000, tick: time.Millisecond},
		{name: "on time 50k", rate: 50_000, tick: time.Millisecond},
		{name: "on time 100k", rate: 100_000, tick: time.Millisecond},
		{name: "slow rate", rate: 7, tick: time.Millisecond},
		{name: "odd tick", rate: 12_345, tick: 1337 * time.Microsecond},
		{name: "jitter up to 3 ticks late", rate: 50_000, tick: time.Millisecond,
			next: func(now time.Duration) time.Duration {
				return now + time.Millisecond + time.Duration(rng.Int64N(int64(3*time.Millisecond)))
			}},
		{name: "stalled 700ms mid-window", rate: 100_000, tick: time.Millisecond, stall: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pacer{rate: c.rate}
			var got int64
			now := time.Duration(0)
			for now < window {
				next := now + c.tick
				if c.next != nil {
					next = c.next(now)
				}
				if c.stall && now < window/2 && next >= window/2 {
					next += 700 * time.Millisecond
				}
				now = min(next, window)
				n := p.due(now)
				if n < 0 {
					t.Fatalf("due(%s) = %d, negative", now, n)
				}
				got += n
			}
			want := float64(c.rate) * window.Seconds()
			if d := float64(got) - want; d > 0.01*want || -d > 0.01*want {
				t.Errorf("offered %d chats over %s at %d/s, want %.0f within 1%%", got, window, c.rate, want)
			}
			if d := float64(got) - want; d > 1 || d < -1 {
				t.Errorf("offered %d, want %.0f exactly (within one chat)", got, want)
			}
		})
	}
}

// TestPacerNoBurstBeforeDue: a call at the same time, or earlier, hands out nothing more.
func TestPacerNoBurstBeforeDue(t *testing.T) {
	p := pacer{rate: 1000}
	if n := p.due(10 * time.Millisecond); n != 10 {
		t.Fatalf("due(10ms) at 1000/s = %d, want 10", n)
	}
	for _, at := range []time.Duration{10 * time.Millisecond, 5 * time.Millisecond, 10*time.Millisecond + 999*time.Microsecond} {
		if n := p.due(at); n != 0 {
			t.Errorf("due(%s) after due(10ms) = %d, want 0", at, n)
		}
	}
	if n := p.due(11 * time.Millisecond); n != 1 {
		t.Errorf("due(11ms) = %d, want 1", n)
	}
}

// TestSplitRate: the goroutines' rates add up to the total.
func TestSplitRate(t *testing.T) {
	for _, c := range []struct {
		rate int64
		n    int
	}{{50_000, 4}, {100_001, 4}, {3, 4}, {7, 1}, {5000, 3}} {
		var sum int64
		for i := range c.n {
			part := splitRate(c.rate, c.n, i)
			if part < c.rate/int64(c.n) || part > c.rate/int64(c.n)+1 {
				t.Errorf("splitRate(%d, %d, %d) = %d: not an even share", c.rate, c.n, i, part)
			}
			sum += part
		}
		if sum != c.rate {
			t.Errorf("splitRate(%d, %d, *) adds up to %d", c.rate, c.n, sum)
		}
	}
}

// TestPlanTick: the chats owed are shared evenly over the senders (within one chat over
// many ticks), a sender at its window gets fewer and the rest stays owed, and a failed
// send stops the tick.
func TestPlanTick(t *testing.T) {
	unlimited := func(int) int64 { return 1 << 40 }

	t.Run("even share over ticks", func(t *testing.T) {
		const m = 250
		counts := make([]int64, m)
		writes := 0
		send := func(i int, n int64) bool { counts[i] += n; writes++; return true }
		p := pacer{rate: 12_500}
		cursor := 0
		var owed, total int64
		for ms := 1; ms <= 10_000; ms++ { // 10 s of 1 ms ticks on a fake clock
			owed += p.due(time.Duration(ms) * time.Millisecond)
			sent, c := planTick(owed, m, cursor, unlimited, send)
			owed -= sent
			total += sent
			cursor = c
		}
		if total != 125_000 || owed != 0 {
			t.Fatalf("sent %d, owed %d: want 125000 and 0", total, owed)
		}
		lo, hi := counts[0], counts[0]
		for _, n := range counts {
			lo, hi = min(lo, n), max(hi, n)
		}
		if hi-lo > 1 {
			t.Errorf("per-sender counts from %d to %d: want within one chat", lo, hi)
		}
		if writes != 125_000 {
			t.Errorf("%d writes for 125000 chats at 50/s per sender and 1 ms ticks: want one each", writes)
		}
	})

	t.Run("one write per sender per tick", func(t *testing.T) {
		writes := map[int]int64{}
		sent, next := planTick(10, 4, 3, unlimited, func(i int, n int64) bool { writes[i] += n; return true })
		// 10 over 4 from cursor 3: senders 3 and 0 get 3, senders 1 and 2 get 2.
		want := map[int]int64{3: 3, 0: 3, 1: 2, 2: 2}
		if sent != 10 || next != 1 || len(writes) != 4 {
			t.Fatalf("sent %d next %d writes %v", sent, next, writes)
		}
		for i, n := range want {
			if writes[i] != n {
				t.Errorf("sender %d got %d, want %d", i, writes[i], n)
			}
		}
	})

	t.Run("window caps, rest stays owed", func(t *testing.T) {
		room := func(i int) int64 { return []int64{0, 1, 5}[i] }
		got := map[int]int64{}
		sent, _ := planTick(9, 3, 0, room, func(i int, n int64) bool { got[i] += n; return true })
		if sent != 4 || got[0] != 0 || got[1] != 1 || got[2] != 3 {
			t.Errorf("sent %d as %v: want 4 (0, 1, 3)", sent, got)
		}
	})

	t.Run("failed send stops", func(t *testing.T) {
		calls := 0
		sent, next := planTick(8, 4, 2, unlimited, func(i int, n int64) bool { calls++; return calls < 2 })
		if sent != 2 || calls != 2 || next != 2 {
			t.Errorf("sent %d after %d calls, next %d: want 2, 2, 2", sent, calls, next)
		}
	})

	t.Run("nothing owed", func(t *testing.T) {
		sent, next := planTick(0, 4, 1, unlimited, func(int, int64) bool { t.Fatal("send called"); return true })
		if sent != 0 || next != 1 {
			t.Errorf("sent %d next %d", sent, next)
		}
	})
}

// TestAckFIFO: answers are matched to writes in order, a write of n chats taking n
// answers, and each answer's latency is recorded from its write.
func TestAckFIFO(t *testing.T) {
	var p pair
	var h histogram
	p.sentAt(100, 3)
	p.sentAt(200, 1)
	p.answered(1100, 2, &h) // two of the first write
	p.sentAt(300, 2)
	p.answered(2100, 3, &h) // the last of the first, the second, one of the third
	p.answered(3300, 5, &h) // one left; extra answers ignored
	if h.Count() != 6 {
		t.Fatalf("recorded %d answers, want 6", h.Count())
	}
	if lo := h.Quantile(0.01); h.Max() != 3000 || lo < 1000 || lo > 1040 {
		t.Errorf("min %s max %s: want 1us (bucket bound, +4%%) and 3us", lo, h.Max())
	}
	// sum: 2x1000 + 2000 + 1900 + 1800 + 3000
	if want := time.Duration((2*1000 + 2000 + 1900 + 1800 + 3000) / 6); h.Mean() != want {
		t.Errorf("mean %s, want %s", h.Mean(), want)
	}
	p.answered(4000, 1, nil) // nothing pending: no panic, nothing recorded
	for i := range 5000 {    // the queue compacts as answers come
		p.sentAt(int64(i), 1)
		p.answered(int64(i)+10, 1, nil)
	}
	if len(p.unacked)-p.ackHead != 0 || cap(p.unacked) > 4096 {
		t.Errorf("queue len %d head %d cap %d after matched traffic", len(p.unacked), p.ackHead, cap(p.unacked))
	}
}
