package lua

import (
	"hash/maphash"
	"sync"
	"time"
)

const (
	counterShards = 64
	// maxCountersPerShard bounds the memory of counters (64 shards: about 4M keys).
	maxCountersPerShard = 1 << 16
)

// Counters is a goroutine-safe map of integer counters that expire, shared by every Lua
// state of a Runtime (tim.incr). A counter's window starts when it is created: its TTL
// is fixed then and later increments do not extend it (a fixed-window rate limit).
//
// Keys are stored as their 64-bit hash (seeded per process), so a key may be long (a
// message's text) at no memory cost; two keys share a counter with a probability of
// about n²/2⁶⁵ for n live keys.
type Counters struct {
	seed   maphash.Seed
	now    func() int64 // ns, monotonic
	shards [counterShards]counterShard
}

type counterShard struct {
	mu sync.Mutex
	m  map[uint64]counterEntry
	_  [40]byte // keep shards on separate cache lines
}

type counterEntry struct {
	value   int64
	expires int64 // ns on the now clock
}

// NewCounters returns an empty set of counters on the monotonic clock.
func NewCounters() *Counters {
	start := time.Now()
	return newCounters(func() int64 { return int64(time.Since(start)) })
}

// newCounters returns counters on a clock of ns (the Runtime's coarse clock).
func newCounters(now func() int64) *Counters {
	c := &Counters{seed: maphash.MakeSeed(), now: now}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]counterEntry)
	}
	return c
}

// slot returns the shard and stored key of key.
func (c *Counters) slot(key string) (*counterShard, uint64) {
	h := maphash.String(c.seed, key)
	return &c.shards[h%counterShards], h
}

// subKey is a counter named by a key and up to two sub-keys, hashed without
// concatenating.
type subKey struct{ key, sub, sub2 string }

// slot2 returns the shard and stored key of (key, sub, sub2).
func (c *Counters) slot2(key, sub, sub2 string) (*counterShard, uint64) {
	h := maphash.Comparable(c.seed, subKey{key, sub, sub2})
	return &c.shards[h%counterShards], h
}

// IncrSub is Incr on the counter named by the pair (key, sub), hashed without
// building key+sub (sub may be a whole message). ("ab", "c") and ("a", "bc") differ.
func (c *Counters) IncrSub(key, sub string, delta int64, ttl time.Duration) int64 {
	return c.IncrSub2(key, sub, "", delta, ttl)
}

// IncrSub2 is IncrSub on the counter named by (key, sub, sub2), e.g. a script, a
// sender and a message text, without building a string of them.
func (c *Counters) IncrSub2(key, sub, sub2 string, delta int64, ttl time.Duration) int64 {
	sh, k := c.slot2(key, sub, sub2)
	return c.incr(sh, k, delta, ttl)
}

// GetSub is Get on the counter (key, sub).
func (c *Counters) GetSub(key, sub string) int64 {
	sh, k := c.slot2(key, sub, "")
	return c.get(sh, k)
}

// Incr adds delta to key and returns the new value. A missing or expired counter
// starts from 0 with a lifetime of ttl.
func (c *Counters) Incr(key string, delta int64, ttl time.Duration) int64 {
	sh, k := c.slot(key)
	return c.incr(sh, k, delta, ttl)
}

// IncrSliding adds delta to key and returns the new value, like Incr, but every
// increment restarts the TTL: the counter lives ttl after its last change (an idle
// timeout, not a fixed window).
func (c *Counters) IncrSliding(key string, delta int64, ttl time.Duration) int64 {
	sh, k := c.slot(key)
	return c.add(sh, k, delta, ttl, true)
}

func (c *Counters) incr(sh *counterShard, k uint64, delta int64, ttl time.Duration) int64 {
	return c.add(sh, k, delta, ttl, false)
}

func (c *Counters) add(sh *counterShard, k uint64, delta int64, ttl time.Duration, sliding bool) int64 {
	now := c.now()
	sh.mu.Lock()
	e, ok := sh.m[k]
	if !ok || e.expires <= now {
		if !ok && len(sh.m) >= maxCountersPerShard {
			sh.evict(now)
		}
		e = counterEntry{expires: now + int64(ttl)}
	}
	if sliding {
		e.expires = now + int64(ttl)
	}
	e.value += delta
	sh.m[k] = e
	sh.mu.Unlock()
	return e.value
}

// Get returns the value of key (0 when missing or expired).
func (c *Counters) Get(key string) int64 {
	sh, k := c.slot(key)
	return c.get(sh, k)
}

func (c *Counters) get(sh *counterShard, k uint64) int64 {
	now := c.now()
	sh.mu.Lock()
	e, ok := sh.m[k]
	sh.mu.Unlock()
	if !ok || e.expires <= now {
		return 0
	}
	return e.value
}

// Delete removes key.
func (c *Counters) Delete(key string) {
	sh, k := c.slot(key)
	sh.mu.Lock()
	delete(sh.m, k)
	sh.mu.Unlock()
}

// Sweep removes expired counters; the Runtime calls it periodically.
func (c *Counters) Sweep() {
	now := c.now()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.expires <= now {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}

// Len returns the number of counters held, expired ones not yet swept included.
func (c *Counters) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}

// evict makes room in a full shard: expired entries first, else arbitrary ones.
// Called with sh.mu held.
func (sh *counterShard) evict(now int64) {
	for k, e := range sh.m {
		if e.expires <= now {
			delete(sh.m, k)
		}
	}
	for k := range sh.m {
		if len(sh.m) < maxCountersPerShard*7/8 {
			break
		}
		delete(sh.m, k)
	}
}
