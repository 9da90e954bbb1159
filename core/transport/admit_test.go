package transport

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
)

func tcpAddr(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestClientKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::"},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	}
	for _, tt := range tests {
		k, ok := clientKey(netip.MustParseAddr(tt.in))
		if !ok || k != netip.MustParseAddr(tt.want) {
			t.Errorf("clientKey(%s) = %v %v, want %s", tt.in, k, ok, tt.want)
		}
	}
	if _, ok := clientKey(netip.Addr{}); ok {
		t.Error("an invalid address has a key")
	}
}

// TestAdmissionPerIPCap opens connections up to the cap from one address, checks that
// the next is refused while another address is served, and that closing one makes room;
// raising the cap (a reload) admits more at once.
func TestAdmissionPerIPCap(t *testing.T) {
	var ad admission
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	steps := []struct {
		name  string
		addr  netip.Addr
		max   int
		close bool
		want  bool
	}{
		{"first", a, 2, false, true},
		{"second", a, 2, false, true},
		{"third refused", a, 2, false, false},
		{"IPv4-mapped is the same address", mapped, 2, false, false},
		{"another address", b, 2, false, true},
		{"a closes one", a, 2, true, true},
		{"room again", a, 2, false, true},
		{"full again", a, 2, false, false},
		{"cap raised", a, 3, false, true},
		{"cap off", a, 0, false, true},
	}
	for _, st := range steps {
		if st.close {
			ad.close(st.addr)
			continue
		}
		if got := ad.open(st.addr, st.max); got != st.want {
			t.Fatalf("%s: open = %v, want %v", st.name, got, st.want)
		}
	}
	for range 4 {
		ad.close(a)
	}
	ad.close(b)
	for i := range ad.shards {
		if n := len(ad.shards[i].open); n != 0 {
			t.Errorf("shard %d keeps %d addresses after every connection closed", i, n)
		}
	}
	if r := ad.accept(tcpAddr("192.0.2.1:1000"), &config.Limits{MaxConnectionsPerIP: 1}, time.Now()); r != "" {
		t.Errorf("accept checks the cap: %q (HTTP connections do not count)", r)
	}
}

// TestAdmissionRate drives the token bucket with a made-up clock.
func TestAdmissionRate(t *testing.T) {
	tests := []struct {
		name  string
		lim   config.Limits
		steps []struct {
			at   time.Duration
			want string
		}
	}{
		{"burst then rate", config.Limits{ConnectionRatePerIP: 2, ConnectionBurstPerIP: 3}, []struct {
			at   time.Duration
			want string
		}{
			{0, ""}, {0, ""}, {0, ""}, {0, RefusedRatePerIP}, // the burst of 3
			{400 * time.Millisecond, RefusedRatePerIP}, // 0.8 tokens
			{500 * time.Millisecond, ""},               // 1 token
			{500 * time.Millisecond, RefusedRatePerIP},
			{10 * time.Second, ""}, {10 * time.Second, ""}, {10 * time.Second, ""}, // refilled to the burst, no more
			{10 * time.Second, RefusedRatePerIP},
		}},
		{"burst defaults to the rate", config.Limits{ConnectionRatePerIP: 1.5}, []struct {
			at   time.Duration
			want string
		}{{0, ""}, {0, ""}, {0, RefusedRatePerIP}}},
		{"off", config.Limits{}, []struct {
			at   time.Duration
			want string
		}{{0, ""}, {0, ""}, {0, ""}, {0, ""}, {0, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ad admission
			start := time.Now()
			for i, st := range tt.steps {
				if got := ad.accept(tcpAddr("198.51.100.4:5"), &tt.lim, start.Add(st.at)); got != st.want {
					t.Fatalf("step %d at %v: %q, want %q", i, st.at, got, st.want)
				}
			}
			// Another address has a bucket of its own.
			if got := ad.accept(tcpAddr("198.51.100.5:5"), &tt.lim, start); got != "" {
				t.Errorf("another address: %q", got)
			}
		})
	}
}

// TestAdmissionSweep checks that buckets that refilled are dropped, so that addresses
// seen once do not stay in memory.
func TestAdmissionSweep(t *testing.T) {
	var ad admission
	lim := &config.Limits{ConnectionRatePerIP: 10}
	start := time.Now()
	for i := range 200 {
		ad.accept(tcpAddr(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1).String()), lim, start)
	}
	k := netip.MustParseAddr("10.9.9.9")
	sh := ad.shard(k)
	if len(sh.buckets) == 0 {
		t.Fatal("no bucket in the shard before the sweep")
	}
	ad.accept(tcpAddr("10.9.9.9:1"), lim, start.Add(2*time.Minute)) // sweeps its shard
	if len(sh.buckets) != 1 || sh.buckets[k] == nil {
		t.Errorf("%d buckets in the shard after a sweep, want only the new one", len(sh.buckets))
	}
}

// BenchmarkAdmission measures what the per-IP limits add to a connection's life: a
// token taken at accept, and the count kept at open and close, from many addresses.
func BenchmarkAdmission(b *testing.B) {
	lim := &config.Limits{MaxConnectionsPerIP: 1000, ConnectionRatePerIP: 1e9}
	addrs := make([]net.Addr, 1024)
	for i := range addrs {
		addrs[i] = tcpAddr(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 9).String())
	}
	var ad admission
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			a := addrs[i%len(addrs)]
			i++
			ad.accept(a, lim, now)
			ip := a.(*net.TCPAddr).AddrPort().Addr()
			if ad.open(ip, lim.MaxConnectionsPerIP) {
				ad.close(ip)
			}
		}
	})
}
