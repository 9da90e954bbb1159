package transport

import (
	"testing"
	"time"
	"unsafe"
)

func TestFrameAge(t *testing.T) {
	tests := []struct {
		then, now int64 // unix seconds
		timeout   time.Duration
		overdue   bool
	}{
		{then: 1000, now: 1000, timeout: 10 * time.Second},
		{then: 1000, now: 1010, timeout: 10 * time.Second},
		{then: 1000, now: 1011, timeout: 10 * time.Second, overdue: true},
		{then: 254, now: 255, timeout: time.Second},                            // the stamp wraps from 255 to 1
		{then: 253, now: 256, timeout: 2 * time.Second, overdue: true},         // across the wrap
		{then: 5000, now: 5000 + 201, timeout: maxFrameTimeout, overdue: true}, // the longest measurable
	}
	for _, tc := range tests {
		c := &Conn{srv: &Server{}}
		c.srv.clock.Store(tc.then)
		c.trackFrame(true, false)
		c.srv.clock.Store(tc.then + 1)
		c.trackFrame(true, false) // more bytes of the same frame keep its stamp
		if got := c.frameOverdue(frameStamp(tc.now), tc.timeout); got != tc.overdue {
			t.Errorf("frame begun at %d, now %d, timeout %s: overdue %v, want %v", tc.then, tc.now, tc.timeout, got, tc.overdue)
		}
		c.trackFrame(false, true)
		if c.frameOverdue(frameStamp(tc.now), tc.timeout) {
			t.Errorf("frame begun at %d: overdue after it completed", tc.then)
		}
	}
	// Frames completing back to back, each read ending inside the next frame: the stamp
	// follows the newest frame, so the connection is never overdue.
	c := &Conn{srv: &Server{}}
	for sec := int64(100); sec < 130; sec++ {
		c.srv.clock.Store(sec)
		c.trackFrame(true, true)
		if c.frameOverdue(frameStamp(sec+1), time.Second) {
			t.Fatalf("streaming connection overdue at %d", sec)
		}
	}
	for sec := int64(0); sec < 600; sec++ {
		if s := frameStamp(sec); s == 0 {
			t.Fatalf("frameStamp(%d) is 0, the no-frame value", sec)
		}
	}
}

// TestConnSizeClass guards the memory per idle connection: the frame stamp must not
// push Conn out of the 128-byte size class.
func TestConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 128 {
		t.Fatalf("Conn is %d bytes, want at most 128", n)
	}
}
