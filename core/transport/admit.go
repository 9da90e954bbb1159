package transport

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/config"
)

// Reasons a connection is refused before it is served: the reason label of
// timgw_connections_refused_total.
const (
	RefusedMaxConnections = "max_connections"        // limits.max_connections
	RefusedPerIP          = "max_connections_per_ip" // limits.max_connections_per_ip
	RefusedRatePerIP      = "connection_rate_per_ip" // limits.connection_rate_per_ip
)

// refusalReasons lists the reasons in the order of admission.refused.
var refusalReasons = [...]string{RefusedMaxConnections, RefusedPerIP, RefusedRatePerIP}

// admission decides which connections from one client address are served: at most
// limits.max_connections_per_ip open at once, and new ones at limits.connection_rate_per_ip
// per second with a burst of limits.connection_burst_per_ip. A client address is an IPv4
// address, or the /64 prefix of an IPv6 address (one host usually has a whole /64). Both
// read the current limits on each call, so a reload applies to the next connection;
// connections already open stay.
type admission struct {
	shards  [16]admissionShard
	refused [len(refusalReasons)]atomic.Uint64
}

type admissionShard struct {
	mu      sync.Mutex
	open    map[netip.Addr]int32   // open connections (Conns) by client address
	buckets map[netip.Addr]*bucket // rate limiter state by client address
	swept   time.Time              // when full buckets were last dropped
}

// bucket is a token bucket: a connection takes a token; tokens come back at the rate.
type bucket struct {
	tokens float64
	last   time.Time
}

// clientKey is the address connections are counted by; ok is false for an address that
// is not IP (nothing is counted then).
func clientKey(remote netip.Addr) (netip.Addr, bool) {
	a := remote.Unmap()
	switch {
	case !a.IsValid():
		return netip.Addr{}, false
	case a.Is4():
		return a, true
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return netip.Addr{}, false
	}
	return p.Addr(), true
}

func (ad *admission) shard(k netip.Addr) *admissionShard {
	b := k.As16()
	return &ad.shards[(b[15]^b[7]^b[3])%uint8(len(ad.shards))]
}

// refuse counts a refusal.
func (ad *admission) refuse(reason string) {
	for i, r := range refusalReasons {
		if r == reason {
			ad.refused[i].Add(1)
		}
	}
}

// accept is the check of a connection just accepted from remote, whatever it turns out
// to speak: it takes a token of the address's rate. It returns the refusal reason, or "".
// (The connection cap is checked by open, once the protocol is known: HTTP connections
// do not count.)
func (ad *admission) accept(remote net.Addr, lim *config.Limits, now time.Time) string {
	if lim.ConnectionRatePerIP <= 0 {
		return ""
	}
	k, ok := clientKey(addrPort(remote).Addr())
	if !ok {
		return ""
	}
	sh := ad.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.take(k, lim, now) {
		ad.refuse(RefusedRatePerIP)
		return RefusedRatePerIP
	}
	return ""
}

// take takes a token of k's bucket; sh.mu is held.
func (sh *admissionShard) take(k netip.Addr, lim *config.Limits, now time.Time) bool {
	rate, burst := lim.ConnectionRatePerIP, float64(lim.ConnectionBurst())
	if now.Sub(sh.swept) > time.Minute {
		sh.sweep(rate, burst, now)
	}
	if sh.buckets == nil {
		sh.buckets = make(map[netip.Addr]*bucket)
	}
	b := sh.buckets[k]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		sh.buckets[k] = b
	}
	b.tokens = math.Min(burst, b.tokens+rate*now.Sub(b.last).Seconds())
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops the buckets that have refilled: they hold nothing a new bucket would not.
func (sh *admissionShard) sweep(rate, burst float64, now time.Time) {
	sh.swept = now
	for k, b := range sh.buckets {
		if b.tokens+rate*now.Sub(b.last).Seconds() >= burst {
			delete(sh.buckets, k)
		}
	}
}

// open counts a connection served from remote, unless the address is at max (> 0):
// then it reports false and counts nothing.
func (ad *admission) open(remote netip.Addr, max int) bool {
	k, ok := clientKey(remote)
	if !ok {
		return true
	}
	sh := ad.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if max > 0 && int(sh.open[k]) >= max {
		return false
	}
	if sh.open == nil {
		sh.open = make(map[netip.Addr]int32)
	}
	sh.open[k]++
	return true
}

// close uncounts a connection that open counted.
func (ad *admission) close(remote netip.Addr) {
	k, ok := clientKey(remote)
	if !ok {
		return
	}
	sh := ad.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.open[k] - 1; n > 0 {
		sh.open[k] = n
	} else {
		delete(sh.open, k)
	}
}

// ConnectionsRefused counts the connections refused since start, by reason (the
// Refused* constants), every reason present.
func (s *Server) ConnectionsRefused() map[string]uint64 {
	out := make(map[string]uint64, len(refusalReasons))
	for i, r := range refusalReasons {
		out[r] = s.adm.refused[i].Load()
	}
	return out
}

// refused logs a connection closed by a limit: a warning for the gateway-wide cap, debug
// for the per-address limits (a client that hammers them must not flood the log; the
// metric counts them).
func (s *Server) refused(nc net.Conn, reason string) {
	lvl := slog.LevelDebug
	if reason == RefusedMaxConnections {
		lvl = slog.LevelWarn
	}
	s.log.Log(context.Background(), lvl, "connection refused: "+reason+" reached", "remote", nc.RemoteAddr().String())
}
