package main

import (
	"fmt"
	"time"
)

// pacer counts the chats an open-loop sender owes at a fixed rate. It has no clock of its
// own: due is given the time since the start, so that a test can drive it with a fake
// clock. Whatever the calls' spacing (a late tick, a goroutine descheduled for a while),
// the chats it has handed out by time t are exactly floor(rate × t): a late tick catches
// up, so the offered rate over a window is exact.
type pacer struct {
	rate   int64 // chats per second
	issued int64 // chats handed out so far
}

// due returns the chats that became due since the last call: floor(rate × elapsed) less
// those handed out already.
func (p *pacer) due(elapsed time.Duration) int64 {
	if elapsed <= 0 || p.rate <= 0 {
		return 0
	}
	// rate × elapsed / 1 s, in two parts so that it cannot overflow for any sane run.
	sec, frac := int64(elapsed/time.Second), int64(elapsed%time.Second)
	want := p.rate*sec + p.rate*frac/int64(time.Second)
	n := want - p.issued
	if n <= 0 {
		return 0
	}
	p.issued = want
	return n
}

// splitRate splits a total rate over n goroutines: rate/n each, and one more to the
// first rate%n, so that the parts add up to the total exactly.
func splitRate(rate int64, n, i int) int64 {
	part := rate / int64(n)
	if int64(i) < rate%int64(n) {
		part++
	}
	return part
}

// planTick shares owed chats over m senders for one tick: each gets owed/m, and the
// owed%m senders from cursor on one more each, so that over the ticks every sender gets
// the same share within one chat. room(i) caps sender i (the free slots of its window);
// send(i, n) is called for every sender given n > 0 chats and reports whether it sent
// them. planTick returns how many chats were sent (the rest stay owed for the next tick)
// and the cursor for the next tick.
func planTick(owed int64, m, cursor int, room func(i int) int64, send func(i int, n int64) bool) (sent int64, next int) {
	if owed <= 0 || m <= 0 {
		return 0, cursor
	}
	base, extra := owed/int64(m), int(owed%int64(m))
	for k := range m {
		n := base
		if k < extra {
			n++
		}
		if n == 0 {
			break // base is 0 and the extra ones are given out
		}
		i := (cursor + k) % m
		n = min(n, room(i))
		if n <= 0 {
			continue
		}
		if !send(i, n) {
			return sent, cursor
		}
		sent += n
	}
	return sent, (cursor + extra) % m
}

// sendPaced drives the senders of mine at rate chats/s (this goroutine's part of -rate),
// open loop: every -tick it computes the chats that became due since the start (a late
// tick catches up), shares them over its senders (planTick) and writes each sender's
// chats with one write. A sender at its window sends its share at a later tick; the
// chats stay owed. One timer for the goroutine, none per chat.
func (r *chatRun) sendPaced(g int, mine []*pair, rate int64) {
	o := r.o
	window := int64(o.window)
	var body, buf []byte
	pc := pacer{rate: rate}
	begin := time.Now()
	next := begin
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var owed int64
	cursor := 0
	broken := false // a write failed: the run has failed or is stopping
	room := func(i int) int64 { return window - mine[i].inflight.Load() }
	send := func(i int, n int64) bool {
		p := mine[i]
		now := r.now()
		buf, body = p.frames(buf[:0], body, n, now, o.size, o.proto)
		if _, err := p.send.Write(buf); err != nil {
			if !r.stopping.Load() {
				r.fail(fmt.Errorf("send: %w", err))
			}
			broken = true
			return false
		}
		r.sent.Add(n)
		return true
	}
	for {
		next = next.Add(o.tick)
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-r.stop:
				return
			}
		} else {
			select {
			case <-r.stop:
				return
			default:
			}
		}
		now := time.Now()
		if r.measuring.Load() {
			r.tickLate.Record(now.Sub(next))
		}
		if now.Sub(next) > o.tick {
			next = now // far behind: tick from now on; the pacer catches up the chats
		}
		due := pc.due(now.Sub(begin))
		r.offered.Add(due)
		owed += due
		sent, c := planTick(owed, len(mine), cursor, room, send)
		if broken {
			return
		}
		owed -= sent
		cursor = c
		r.owed[g].Store(owed)
	}
}
