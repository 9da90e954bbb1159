package lua

import (
	"hash/maphash"
	"sync"
	"time"
)

// maxKVPerShard bounds the memory of the key-value store (64 shards: about 1M keys).
const maxKVPerShard = 1 << 14

// KV is a goroutine-safe map of short strings that expire, shared by every Lua state of
// a Runtime (tim.kv_set, tim.kv_get): a sticky pairing ("this customer talks to that
// agent"), a session flag. Unlike the counters, an entry lives ttl after its last set:
// setting it again slides its expiry.
type KV struct {
	seed   maphash.Seed
	now    func() int64 // ns, monotonic
	shards [counterShards]kvShard
}

type kvShard struct {
	mu sync.Mutex
	m  map[string]kvEntry
}

type kvEntry struct {
	value   string
	expires int64
}

func newKV(now func() int64) *KV {
	kv := &KV{seed: maphash.MakeSeed(), now: now}
	for i := range kv.shards {
		kv.shards[i].m = make(map[string]kvEntry)
	}
	return kv
}

func (kv *KV) shard(key string) *kvShard {
	return &kv.shards[maphash.String(kv.seed, key)%counterShards]
}

// Set stores value under key for ttl from now.
func (kv *KV) Set(key, value string, ttl time.Duration) {
	now := kv.now()
	sh := kv.shard(key)
	sh.mu.Lock()
	if _, ok := sh.m[key]; !ok && len(sh.m) >= maxKVPerShard {
		sh.evict(now)
	}
	sh.m[key] = kvEntry{value: value, expires: now + int64(ttl)}
	sh.mu.Unlock()
}

// Get returns the value of key ("", false when missing or expired).
func (kv *KV) Get(key string) (string, bool) {
	now := kv.now()
	sh := kv.shard(key)
	sh.mu.Lock()
	e, ok := sh.m[key]
	sh.mu.Unlock()
	if !ok || e.expires <= now {
		return "", false
	}
	return e.value, true
}

// Delete removes key.
func (kv *KV) Delete(key string) {
	sh := kv.shard(key)
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
}

// Sweep removes expired entries.
func (kv *KV) Sweep() {
	now := kv.now()
	for i := range kv.shards {
		sh := &kv.shards[i]
		sh.mu.Lock()
		sh.evict(now)
		sh.mu.Unlock()
	}
}

// evict removes expired entries, and when none was, the one expiring first (the shard
// is full: the oldest pairing goes). Called with the shard locked.
func (sh *kvShard) evict(now int64) {
	n := len(sh.m)
	soonest, key := int64(0), ""
	for k, e := range sh.m {
		if e.expires <= now {
			delete(sh.m, k)
			continue
		}
		if key == "" || e.expires < soonest {
			soonest, key = e.expires, k
		}
	}
	if len(sh.m) == n && key != "" {
		delete(sh.m, key)
	}
}
