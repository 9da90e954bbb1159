package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"time"
)

// idleResult is what the idle benchmark measured.
type idleResult struct {
	Proto      string
	Conns      int
	RSSBefore  int64 // bytes, gateway started and settled, no client
	RSSAfter   int64 // bytes, every connection logged in and settled
	HWM        int64 // bytes, the gateway's peak RSS
	PerConnKiB float64
	Connect    time.Duration // time to open and log in every connection

	PluginBefore, PluginAfter int64 // bytes, summed RSS of the gateway's plugin processes
}

// pluginNote describes the plugin processes' RSS, or "" when there are none.
func pluginNote(rss int64, names []string) string {
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("; plugin processes (%s): %s more", strings.Join(names, ", "), mib(rss))
}

// idleTargetKiB is issue 2's target for server memory per idle connection.
const idleTargetKiB = 1.5

func runIdle(ctx context.Context, args []string, stdout, stderr io.Writer) (*idleResult, error) {
	fs := flag.NewFlagSet("timgw-bench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var gf gatewayFlags
	gf.register(fs, "default")
	proto := fs.String("proto", protoTCP, "client protocol: tcp (t-im frames, login with cmd 5) or ws (WebSocket, login with ?username=)")
	n := fs.Int("n", 15000, "idle connections to open and log in (the bench needs n + ~50 file descriptors)")
	conc := fs.Int("c", 64, "connections being opened at a time")
	src := fs.String("src", "127.0.0.2-127.0.0.9", "client source addresses, a range A.B.C.x-A.B.C.y or a comma list; empty: let the kernel choose")
	settle := fs.Duration("settle", 3*time.Second, "wait this long before sampling the RSS, both before and after connecting")
	timeout := fs.Duration("timeout", 10*time.Second, "dial and login timeout per connection")
	runs := fs.Int("runs", 1, "repeat the whole measurement (a fresh gateway each time) this many times and print the median per connection")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: timgw-bench idle [flags]

Starts the gateway, reads its RSS (VmRSS in /proc/<pid>/status) once it has settled,
opens -n connections and logs each in (user u<i>), lets the gateway settle again and
reads its RSS again (sampled every 500 ms, or -settle/4 if shorter, until three
samples agree within 1%%). Prints the RSS before
and after, the delta and the KiB per connection (issue 2 target: <= %.1f KiB). With
-runs N it does all of that N times, each with a fresh gateway, and prints each run's
KiB per connection and their median.

Flags:
`, idleTargetKiB)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := gf.check(fs); err != nil {
		return nil, err
	}
	if err := checkProto(*proto); err != nil {
		return nil, err
	}
	if *n <= 0 || *conc <= 0 || *runs <= 0 {
		return nil, fmt.Errorf("%w: -n, -c and -runs must be positive", errUsage)
	}
	srcs, err := parseSources(*src)
	if err != nil {
		return nil, err
	}
	nofile, err := raiseNoFile()
	if err != nil {
		return nil, err
	}
	if need := uint64(*n) + 64; nofile < need {
		return nil, fmt.Errorf("open-file limit %d is below the %d this run needs (lower -n)", nofile, need)
	}

	bin, cleanup, err := resolveBin(ctx, gf, stderr)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var all []*idleResult
	for i := range *runs {
		if *runs > 1 {
			fmt.Fprintf(stdout, "run %d of %d:\n", i+1, *runs)
		}
		gw, err := startGateway(ctx, bin, gf)
		if err != nil {
			return nil, err
		}
		res, err := idle(ctx, gw, *proto, *n, *conc, srcs, *settle, *timeout, stdout, stderr)
		if serr := gw.stop(); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return nil, err
		}
		all = append(all, res)
	}
	if len(all) == 1 {
		return all[0], nil
	}
	med := medianIdle(all)
	var each []string
	for _, r := range all {
		each = append(each, fmt.Sprintf("%.2f", r.PerConnKiB))
	}
	fmt.Fprintf(stdout, "idle proto=%s conns=%d runs=%d per_conn median=%.2f KiB (runs: %s KiB; %s target <= %.1f KiB)\n",
		*proto, *n, len(all), med.PerConnKiB, strings.Join(each, " "), idleVerdict(med.PerConnKiB), idleTargetKiB)
	if med.PluginBefore > 0 || med.PluginAfter > 0 {
		var plug []float64
		for _, r := range all {
			plug = append(plug, r.withPluginsKiB())
		}
		slices.Sort(plug)
		fmt.Fprintf(stdout, "with plugin processes: per_conn median=%.2f KiB\n", plug[len(plug)/2])
	}
	return med, nil
}

// medianIdle returns the run with the median KiB per connection (for an even count, the
// upper of the two middle runs).
func medianIdle(all []*idleResult) *idleResult {
	s := slices.Clone(all)
	slices.SortFunc(s, func(a, b *idleResult) int { return cmp.Compare(a.PerConnKiB, b.PerConnKiB) })
	return s[len(s)/2]
}

// withPluginsKiB is the KiB per connection of the gateway and its plugin processes.
func (r *idleResult) withPluginsKiB() float64 {
	d := (r.RSSAfter + r.PluginAfter) - (r.RSSBefore + r.PluginBefore)
	return float64(d) / 1024 / float64(r.Conns)
}

func idleVerdict(kib float64) string {
	if kib > idleTargetKiB {
		return "MISSES"
	}
	return "meets"
}

func idle(ctx context.Context, gw *gateway, proto string, n, conc int, srcs []net.IP, settle, timeout time.Duration, stdout, stderr io.Writer) (*idleResult, error) {
	printHeader(stdout, gw, gw.addr)
	fmt.Fprintf(stdout, "idle: proto=%s n=%d sources=%s settle=%s\n", proto, n, describeSources(srcs), settle)

	// RSS samples come every 500 ms, or faster for a short -settle.
	interval := min(500*time.Millisecond, max(settle/4, 20*time.Millisecond))
	if err := sleepCtx(ctx, settle); err != nil {
		return nil, err
	}
	before, err := stableRSS(ctx, gw, interval, stderr)
	if err != nil {
		return nil, err
	}
	plugBefore, nplug := gw.pluginRSS()
	fmt.Fprintf(stdout, "rss before: %s (gateway started, no client)%s\n", mib(before), pluginNote(plugBefore, nplug))

	d := newDialer(gw.addr, proto, srcs, timeout)
	start := time.Now()
	last := start
	conns, _, err := loginAll(ctx, d, n, conc, func(i int) string { return fmt.Sprintf("u%d", i) }, func(done int) {
		if done%5000 == 0 && done < n {
			now := time.Now()
			fmt.Fprintf(stderr, "  %d/%d logged in (%.0f/s)\n", done, n, 5000/now.Sub(last).Seconds())
			last = now
		}
	})
	connect := time.Since(start)
	if err != nil {
		if aerr := gw.alive(); aerr != nil {
			return nil, fmt.Errorf("%v\n%v", err, aerr)
		}
		return nil, err
	}
	defer closeAll(conns)
	// The rest bytes are dropped: an idle client reads nothing after its login response.
	runtime.GC() // drop the bench's own login garbage; it does not touch the gateway
	fmt.Fprintf(stdout, "connected: %d connections logged in over %s in %s (%.0f logins/s)\n",
		n, proto, connect.Round(time.Millisecond), float64(n)/connect.Seconds())

	if err := sleepCtx(ctx, settle); err != nil {
		return nil, err
	}
	after, err := stableRSS(ctx, gw, interval, stderr)
	if err != nil {
		return nil, err
	}
	if err := gw.alive(); err != nil {
		return nil, err
	}
	_, hwm, _ := gw.rss()
	plugAfter, nplugAfter := gw.pluginRSS()
	res := &idleResult{Proto: proto, Conns: n, RSSBefore: before, RSSAfter: after, HWM: hwm, Connect: connect,
		PerConnKiB: float64(after-before) / 1024 / float64(n), PluginBefore: plugBefore, PluginAfter: plugAfter}
	verdict := idleVerdict
	fmt.Fprintf(stdout, "rss after:  %s (%d idle logged-in connections), peak %s%s\n", mib(after), n, mib(hwm), pluginNote(plugAfter, nplugAfter))
	fmt.Fprintf(stdout, "idle proto=%s conns=%d rss_before=%s rss_after=%s delta=%s per_conn=%.2f KiB (%s target <= %.1f KiB)\n",
		proto, n, mib(before), mib(after), mib(after-before), res.PerConnKiB, verdict(res.PerConnKiB), idleTargetKiB)
	if len(nplug) > 0 || len(nplugAfter) > 0 {
		d := (after + plugAfter) - (before + plugBefore)
		kib := float64(d) / 1024 / float64(n)
		fmt.Fprintf(stdout, "with plugin processes: rss_before=%s rss_after=%s delta=%s per_conn=%.2f KiB (%s target)\n",
			mib(before+plugBefore), mib(after+plugAfter), mib(d), kib, verdict(kib))
	}
	return res, nil
}

func describeSources(srcs []net.IP) string {
	if len(srcs) == 0 {
		return "kernel-chosen"
	}
	var s []string
	for _, ip := range srcs {
		s = append(s, ip.String())
	}
	if len(s) > 2 {
		return fmt.Sprintf("%s..%s (%d addresses)", s[0], s[len(s)-1], len(s))
	}
	return strings.Join(s, ",")
}

// stableRSS samples the gateway's RSS every interval until three consecutive samples are
// within 1% of each other (at most 20 samples) and returns their median.
func stableRSS(ctx context.Context, gw *gateway, interval time.Duration, log io.Writer) (int64, error) {
	var samples []int64
	for i := 0; ; i++ {
		rss, _, err := gw.rss()
		if err != nil {
			if aerr := gw.alive(); aerr != nil {
				return 0, aerr
			}
			return 0, fmt.Errorf("read gateway RSS: %w", err)
		}
		samples = append(samples, rss)
		if k := len(samples); k >= 3 {
			last := slices.Clone(samples[k-3:])
			slices.Sort(last)
			if float64(last[2]-last[0]) <= 0.01*float64(last[2]) {
				return last[1], nil
			}
			if i >= 19 {
				fmt.Fprintf(log, "  rss did not settle within 1%% in %d samples: %v; using the median of the last three\n", len(samples), samples)
				return last[1], nil
			}
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return 0, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
