package transport

import (
	"testing"
	"time"
)

// TestIdleCutoff: a connection is closed for silence only after the whole idle timeout,
// however the coarse clock (set once per tick, whole seconds) lags its last read.
func TestIdleCutoff(t *testing.T) {
	at := func(sec float64) time.Time { return time.Unix(0, int64(sec*1e9)) }
	for _, c := range []struct {
		name       string
		prevTick   float64 // the tick that set the clock the read stored
		read, tick float64 // the real read, the tick that checks
		timeout    time.Duration
		idle       bool
	}{
		{"read just before a late tick", 10.999, 11.9, 12.02, time.Second, false},
		{"read right after a tick", 10.0, 10.01, 11.0, time.Second, false},
		{"silent 2.5 timeouts, tick late", 10.999, 11.0, 13.5, time.Second, true},
		{"silent past the slack", 10.0, 10.01, 13.0, time.Second, true},
		{"3m, silent 2m59s", 100.5, 100.6, 279.6, 3 * time.Minute, false},
		{"3m, silent 3m3s", 100.5, 100.6, 283.6, 3 * time.Minute, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			lastRead := at(c.prevTick).Unix() // what Conn.lastRead holds after the read
			idle := lastRead < idleCutoff(at(c.tick), c.timeout)
			if silent := time.Duration((c.tick - c.read) * 1e9); idle && silent < c.timeout {
				t.Fatalf("closed after %s of silence, timeout %s", silent, c.timeout)
			}
			if idle != c.idle {
				t.Errorf("idle = %v, want %v", idle, c.idle)
			}
		})
	}
}
