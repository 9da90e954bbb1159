package memtrim

import (
	"testing"
	"time"
)

// TestStep feeds step a traffic counter at 2 s steps and checks when it trims.
func TestStep(t *testing.T) {
	type at struct {
		rate float64 // packets per second since the previous step
		heap uint64  // live heap then
		trim bool    // step must say trim
	}
	cases := []struct {
		name  string
		quiet time.Duration
		steps []at
	}{
		{"quiet long enough trims once", 6 * time.Second, []at{
			{rate: 0}, {rate: 10}, {rate: 10}, {rate: 10, trim: false}, {rate: 10, heap: 50 << 20, trim: true},
			{rate: 10, heap: 60 << 20}, {rate: 0, heap: 60 << 20}}},
		{"busy never trims", 4 * time.Second, []at{
			{rate: 0}, {rate: 5000}, {rate: 5000}, {rate: 5000}, {rate: 5000}, {rate: 5000}}},
		{"a burst restarts the quiet spell", 4 * time.Second, []at{
			{rate: 0}, {rate: 0}, {rate: 0}, {rate: 0, heap: 10 << 20, trim: true}, {rate: 9000, heap: 30 << 20},
			{rate: 0, heap: 30 << 20}, {rate: 0, heap: 30 << 20}, {rate: 0, heap: 30 << 20, trim: true}}},
		{"no growth since the last trim: no second trim", 4 * time.Second, []at{
			{rate: 0}, {rate: 0}, {rate: 0}, {rate: 0, heap: 40 << 20, trim: true}, {rate: 9000, heap: 41 << 20},
			{rate: 0, heap: 41 << 20}, {rate: 0, heap: 41 << 20}, {rate: 0, heap: 41 << 20}, {rate: 0, heap: 41 << 20}}},
		{"off", 0, []at{{rate: 0}, {rate: 0}, {rate: 0}, {rate: 0}, {rate: 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var heap uint64
			tr := New(Options{Quiet: tc.quiet, MaxRate: 100, Activity: func() uint64 { return 0 },
				HeapLive: func() uint64 { return heap }, Trim: func() {}})
			now := time.Unix(1000, 0)
			var counter uint64
			for i, s := range tc.steps {
				heap = s.heap
				counter += uint64(s.rate * tick.Seconds())
				got := tr.step(now, counter)
				if got {
					tr.heapAtTrim = heap // what Run records after Trim
				}
				if got != s.trim {
					t.Fatalf("step %d (rate %v, heap %d): trim %v, want %v", i, s.rate, s.heap, got, s.trim)
				}
				now = now.Add(tick)
			}
		})
	}
}
