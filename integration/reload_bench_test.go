//go:build unix

package integration

import (
	"debug/buildinfo"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestReloadBenchmark measures configuration reloads under many live connections (issue
// 6: at most 100 ms and no connection dropped with 15,000 connections). It runs only
// when TIMGW_RELOAD_BENCH is the number of connections. Build the gateway without the
// race detector for numbers that mean something:
//
//	go build -o /tmp/timgw-bench ./cmd/timgw
//	TIMGW_BIN=/tmp/timgw-bench TIMGW_RELOAD_BENCH=15000 \
//	    go test -count=1 -run TestReloadBenchmark -v -timeout 30m ./integration/
//
// It opens the connections (t-im TCP and WebSocket alternately, from source addresses
// 127.0.0.2 to 127.0.0.9 so that no one address runs out of ephemeral ports, each logged
// in as a user of its own), then applies TIMGW_RELOAD_BENCH_RELOADS (default 20) edits
// of the configuration file with POST /admin/reload, each changing limits.idle_timeout
// and adding or removing a dedicated tcp listener. It reports the reload duration the
// gateway measured (durationNs) and the one seen by the client (the POST's round trip:
// reading and parsing the file included), p50 and max, and checks that every connection
// still answers a heartbeat afterwards (dropped: must be 0).
func TestReloadBenchmark(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TIMGW_RELOAD_BENCH"))
	if n <= 0 {
		t.Skip("reload benchmark: set TIMGW_RELOAD_BENCH to the number of connections (e.g. 15000)")
	}
	reloads := 20
	if s := os.Getenv("TIMGW_RELOAD_BENCH_RELOADS"); s != "" {
		var err error
		if reloads, err = strconv.Atoi(s); err != nil || reloads < 1 {
			t.Fatalf("TIMGW_RELOAD_BENCH_RELOADS=%q: want a positive number", s)
		}
	}
	raiseNofile(t, n)
	if race := raceBuilt(binPath); race {
		t.Logf("the gateway binary %s is built with the race detector: its numbers are pessimistic (set TIMGW_BIN to a plain build)", binPath)
	}

	cfg := newLiveConfig(t, "reload-bench", gwConfig{IdleTimeout: 5 * time.Minute})
	cfg.Set("log.level", "info") // not a debug line per login
	cfg.Write(t, byRename)
	g := startTestGateway(t, "reload-bench", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)

	start := time.Now()
	conns := openBenchConns(t, g, n)
	t.Logf("%d connections logged in in %v", n, time.Since(start).Round(time.Millisecond))
	countConns := func() error {
		st, err := adm.getStatus()
		if err != nil {
			return err
		}
		total := 0
		for _, c := range st.Connections {
			total += c
		}
		if total != n {
			return fmt.Errorf("the gateway has %d connections (%v), want %d", total, st.Connections, n)
		}
		return nil
	}
	eventually(t, "the gateway counts every connection", countConns)

	extra, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var gwTook, e2eTook []time.Duration
	byWatcher := 0
	for i := range reloads {
		cfg.Set("limits.idle_timeout", (5*time.Minute + time.Duration(i+1)*time.Second).String())
		wantListener := "listeners: -tcp " + extra
		if i%2 == 0 {
			cfg.Set("listeners", []any{map[string]any{"protocol": "tcp", "address": extra}})
			wantListener = "listeners: +tcp " + extra
		} else {
			cfg.Set("listeners", []any{})
		}
		mark := time.Now()
		cfg.Write(t, byRename)
		sent := time.Now()
		code, r := adm.reload(t)
		e2e := time.Since(sent)
		if code != http.StatusOK || r.Error != "" {
			t.Fatalf("reload %d: HTTP %d %s", i+1, code, r)
		}
		if r.Skipped { // the directory watcher applied the edit first: no round trip to count
			byWatcher++
			r = adm.waitReload(t, mark, "the edit is applied", func(e reloadResult) bool { return e.Error == "" && !e.Skipped })
		} else {
			e2eTook = append(e2eTook, e2e)
		}
		if !r.hasChange("limits") || !r.hasChange(wantListener) {
			t.Errorf("reload %d: %s, want the changes limits and %q", i+1, r, wantListener)
		}
		gwTook = append(gwTook, time.Duration(r.DurationNs))
		// The watcher reloads the same edit (and finds nothing new): let it pass before
		// the next edit, so that it is not measured with it.
		adm.waitReload(t, mark, "the directory watcher reloads too", func(e reloadResult) bool { return e.Trigger == "file" })
	}

	start = time.Now()
	dropped, errs := heartbeatAll(conns)
	t.Logf("heartbeat round trip on all %d connections in %v", n, time.Since(start).Round(time.Millisecond))
	for _, e := range errs {
		t.Log(e)
	}
	if err := countConns(); err != nil {
		t.Error(err)
	}

	gp50, gmax := percentile(gwTook, 50), slices.Max(gwTook)
	summary := fmt.Sprintf("reload benchmark: %d live connections (%d tcp, %d ws), %d reloads: gateway-measured p50 %v max %v; end to end (POST /admin/reload) p50 %v max %v over %d; dropped %d",
		n, (n+1)/2, n/2, reloads, gp50, gmax, percentile(e2eTook, 50), maxOf(e2eTook), len(e2eTook), dropped)
	if byWatcher > 0 {
		summary += fmt.Sprintf(" (%d edits were applied by the directory watcher before the POST)", byWatcher)
	}
	t.Log(summary)
	if dropped > 0 {
		t.Errorf("%d of %d connections dropped during the reloads, want 0", dropped, n)
	}
	if gmax > 100*time.Millisecond {
		t.Errorf("slowest reload took %v (gateway-measured), target at most 100 ms", gmax)
	}
}

// raiseNofile raises this process's open-file limit to its hard limit, which gateways
// started afterwards inherit (an explicit setrlimit is kept for children), and skips t
// when it leaves no room for n connections.
func raiseNofile(t *testing.T, n int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", lim.Max, err)
	}
	if need := uint64(n) + 1024; lim.Cur < need {
		t.Skipf("RLIMIT_NOFILE hard limit %d: %d connections need about %d", lim.Max, n, need)
	}
	t.Logf("RLIMIT_NOFILE %d", lim.Cur)
}

// raceBuilt reports whether the binary at path was built with the race detector.
func raceBuilt(path string) bool {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// openBenchConns opens n connections to the shared port of g, alternately t-im TCP and
// WebSocket, from source addresses 127.0.0.2 to 127.0.0.9, and logs each in as a user of
// its own. They are closed when t ends.
func openBenchConns(t *testing.T, g *gateway, n int) []*timclient.Conn {
	t.Helper()
	conns := make([]*timclient.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var (
		next   atomic.Int64
		failed atomic.Int64
		mu     sync.Mutex
		errs   []string
		wg     sync.WaitGroup
	)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ep := epTCP
				if i%2 == 1 {
					ep = epWS
				}
				opts := &timclient.Options{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}}
				c, err := timclient.Dial(epURL(ep, g.Addr), opts)
				if err == nil {
					if _, err = c.Login(fmt.Sprintf("bench-%d", i), "x", wait); err != nil {
						c.Close()
					}
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 10 {
						errs = append(errs, fmt.Sprintf("connection %d (%s): %v", i, ep, err))
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d connections could not be opened and logged in; first errors:\n%v", f, n, errs)
	}
	return conns
}

// heartbeatAll runs a heartbeat round trip on every connection and returns how many
// failed, with the first errors.
func heartbeatAll(conns []*timclient.Conn) (int, []string) {
	var (
		next, failed atomic.Int64
		mu           sync.Mutex
		errs         []string
		wg           sync.WaitGroup
	)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				if _, err := conns[i].Sync(wait); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 10 {
						errs = append(errs, fmt.Sprintf("connection %d (%s) dropped: %v", i, conns[i].Proto(), err))
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load()), errs
}

// percentile returns the p-th percentile of ds (nearest rank), 0 when empty.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

// maxOf returns the largest of ds, 0 when empty.
func maxOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}
