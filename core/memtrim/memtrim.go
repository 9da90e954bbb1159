// Package memtrim gives the gateway's free memory back to the operating system once it
// has been quiet for a while. Go keeps the heap it grew (about twice the live data by
// default) until later collections need it: after a login burst, an idle gateway holding
// 15,000 connections keeps nearly twice the memory they need. When traffic has stayed
// under a low rate for Quiet, a Trimmer collects garbage and releases the free pages
// (runtime/debug.FreeOSMemory) once; it does so again only after traffic resumed and
// the heap grew. A busy gateway is never trimmed: its collector keeps its own pace.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Options configure a Trimmer.
type Options struct {
	// Quiet is how long traffic must stay under MaxRate before a trim; 0 disables
	// trimming (SetQuiet may enable it later).
	Quiet time.Duration
	// MaxRate is the traffic, in Activity units per second, under which the gateway
	// counts as quiet (default 100: heartbeats of a few thousand idle clients).
	MaxRate float64
	// Activity is a counter that grows with traffic (packets in and out). Required.
	Activity func() uint64
	// Logger receives one debug line per trim (default slog.Default()).
	Logger *slog.Logger
	// Trim releases memory (default debug.FreeOSMemory); HeapLive reads the live heap
	// in bytes (default the runtime's /gc/heap/live:bytes). Tests replace them.
	Trim     func()
	HeapLive func() uint64
}

// Trimmer watches traffic and trims when quiet. Run drives it; SetQuiet may be called
// from any goroutine.
type Trimmer struct {
	opts  Options
	quiet atomic.Int64 // time.Duration

	// state of step, touched only by Run's goroutine
	last        uint64    // Activity at the previous step
	lastAt      time.Time // when the previous step ran
	quietSince  time.Time // zero while busy
	trimmed     bool      // trimmed during the current quiet spell
	heapAtTrim  uint64    // live heap after the last trim
	everStepped bool
}

// New returns a Trimmer; call Run to start it.
func New(o Options) *Trimmer {
	if o.MaxRate <= 0 {
		o.MaxRate = 100
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Trim == nil {
		o.Trim = debug.FreeOSMemory
	}
	if o.HeapLive == nil {
		o.HeapLive = heapLive
	}
	t := &Trimmer{opts: o}
	t.quiet.Store(int64(o.Quiet))
	return t
}

// SetQuiet changes Quiet (a config reload); 0 disables trimming.
func (t *Trimmer) SetQuiet(d time.Duration) { t.quiet.Store(int64(d)) }

// tick is how often Run looks at the traffic.
const tick = 2 * time.Second

// Run looks at the traffic every tick until ctx is done.
func (t *Trimmer) Run(ctx context.Context) {
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			if t.step(now, t.opts.Activity()) {
				start := time.Now()
				before := t.opts.HeapLive()
				t.opts.Trim()
				t.heapAtTrim = t.opts.HeapLive()
				t.opts.Logger.Debug("memory trimmed while quiet", "live_before", before, "live_after", t.heapAtTrim,
					"took", time.Since(start))
			}
		}
	}
}

// minGrowth is how much the live heap must grow after a trim before another one.
const minGrowth = 4 << 20

// step records the traffic counter at now and reports whether to trim now: traffic
// stayed under MaxRate for Quiet, this quiet spell has not been trimmed yet, and the
// live heap grew by minGrowth since the last trim (or there was none).
func (t *Trimmer) step(now time.Time, activity uint64) bool {
	quiet := time.Duration(t.quiet.Load())
	if !t.everStepped {
		t.everStepped, t.last, t.lastAt = true, activity, now
		return false
	}
	dt := now.Sub(t.lastAt).Seconds()
	delta := activity - t.last
	t.last, t.lastAt = activity, now
	if quiet <= 0 || dt <= 0 {
		t.quietSince, t.trimmed = time.Time{}, false
		return false
	}
	if float64(delta)/dt > t.opts.MaxRate {
		t.quietSince, t.trimmed = time.Time{}, false
		return false
	}
	if t.quietSince.IsZero() {
		t.quietSince = now
	}
	if t.trimmed || now.Sub(t.quietSince) < quiet {
		return false
	}
	t.trimmed = true
	return t.heapAtTrim == 0 || t.opts.HeapLive() >= t.heapAtTrim+minGrowth
}

// heapLive reads the runtime's estimate of the live heap.
func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
