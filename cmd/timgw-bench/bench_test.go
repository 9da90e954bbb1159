package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSmoke builds the real gateway and runs the benchmarks briefly against it. It checks
// that the bench works (chats delivered and acknowledged, RSS read), not any target.
func TestSmoke(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc: Linux only")
	}
	bin := filepath.Join(t.TempDir(), "timgw")
	build := exec.Command("go", "build", "-o", bin, gatewayModule)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gateway: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, proto := range []string{protoTCP, protoWS} {
		t.Run("chat/"+proto, func(t *testing.T) {
			var out, log bytes.Buffer
			res, err := runChat(ctx, []string{"-bin", bin, "-proto", proto, "-pairs", "10",
				"-warmup", "200ms", "-duration", "1s", "-window", "8"}, &out, &log)
			t.Logf("output:\n%s%s", out.String(), log.String())
			if err != nil {
				t.Fatal(err)
			}
			if res.Delivered == 0 || res.Acks == 0 || res.Samples == 0 {
				t.Errorf("delivered=%d acks=%d latency samples=%d: want all > 0", res.Delivered, res.Acks, res.Samples)
			}
			if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
				t.Errorf("latency p50=%s p99=%s max=%s: not ordered", res.P50, res.P99, res.Max)
			}
			if res.AckErrors != 0 || res.Undelivered != 0 {
				t.Errorf("ack errors %d, undelivered %d: want 0", res.AckErrors, res.Undelivered)
			}
			if !strings.Contains(out.String(), "chat proto="+proto+" pairs=10 ") {
				t.Errorf("no summary line in the output")
			}
		})
		t.Run("idle/"+proto, func(t *testing.T) {
			var out, log bytes.Buffer
			res, err := runIdle(ctx, []string{"-bin", bin, "-proto", proto, "-n", "200", "-settle", "200ms"}, &out, &log)
			t.Logf("output:\n%s%s", out.String(), log.String())
			if err != nil {
				t.Fatal(err)
			}
			if res.Conns != 200 || res.RSSBefore <= 0 || res.RSSAfter <= 0 {
				t.Errorf("conns=%d rss before=%d after=%d: want 200 connections and both RSS read", res.Conns, res.RSSBefore, res.RSSAfter)
			}
		})
	}

	// -runs 3: three fresh gateways measured, each printed, and the median.
	t.Run("idle/runs", func(t *testing.T) {
		var out, log bytes.Buffer
		res, err := runIdle(ctx, []string{"-bin", bin, "-n", "100", "-settle", "100ms", "-runs", "3"}, &out, &log)
		t.Logf("output:\n%s%s", out.String(), log.String())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(out.String(), "\nidle proto=tcp conns=100 rss_before="); got != 3 {
			t.Errorf("%d per-run summary lines, want 3", got)
		}
		if !strings.Contains(out.String(), "idle proto=tcp conns=100 runs=3 per_conn median=") || res.Conns != 100 {
			t.Errorf("no median line in the output (or conns %d)", res.Conns)
		}
	})

	// -rate: the paced senders offer chats, and acks have a latency.
	t.Run("chat/rate", func(t *testing.T) {
		var out, log bytes.Buffer
		res, err := runChat(ctx, []string{"-bin", bin, "-pairs", "20", "-rate", "2000", "-storage", "none",
			"-warmup", "300ms", "-duration", "2s"}, &out, &log)
		t.Logf("output:\n%s%s", out.String(), log.String())
		if err != nil {
			t.Fatal(err)
		}
		// The exact count is TestPacerOfferedExact's (fake clock): here the window's
		// length depends on the machine's scheduling.
		if res.Offered <= 0 || res.Sent <= 0 {
			t.Errorf("offered %d, sent %d: want both > 0", res.Offered, res.Sent)
		}
		if res.AckSamples == 0 || res.AckP50 <= 0 || res.AckP99 < res.AckP50 || res.AckMax < res.AckP99 {
			t.Errorf("ack latency samples=%d p50=%s p99=%s max=%s: want samples, ordered", res.AckSamples, res.AckP50, res.AckP99, res.AckMax)
		}
		for _, want := range []string{"\npacing: offered ", "\nlatency from the send: delivery ", "\ncpu per chat: gateway+plugins="} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("no %q line in the output", want[1:])
			}
		}
	})

	// Two nodes over embedded NATS: chats within a node and across nodes arrive, and
	// both phases have a CPU cost per chat.
	t.Run("cluster", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		var out, log bytes.Buffer
		res, err := runCluster(ctx, []string{"-bin", bin, "-pairs", "10", "-rate", "500",
			"-warmup", "200ms", "-duration", "1s", "-window", "8"}, &out, &log)
		t.Logf("output:\n%s%s", out.String(), log.String())
		if err != nil {
			t.Fatal(err)
		}
		for name, ph := range map[string]*clusterPhase{"same": res.Same, "across": res.Across} {
			c := ph.Chat
			if c.Delivered == 0 || c.Acks == 0 || c.Samples == 0 || ph.CPUPerMsg <= 0 {
				t.Errorf("%s: delivered=%d acks=%d samples=%d cpu/msg=%s: want all > 0", name, c.Delivered, c.Acks, c.Samples, ph.CPUPerMsg)
			}
			if c.AckErrors != 0 || c.Undelivered != 0 {
				t.Errorf("%s: ack errors %d, undelivered %d: want 0", name, c.AckErrors, c.Undelivered)
			}
		}
		if res.Ratio <= 0 || !strings.Contains(out.String(), "cluster pairs=10 rate=500/s: cpu/msg same=") {
			t.Errorf("ratio %.2f, or no summary line in the output", res.Ratio)
		}
	})

	// A group of 50 over both protocols, each on a fresh gateway: every member joins and
	// gets every chat, and the numbers are printed.
	t.Run("fanout", func(t *testing.T) {
		var out, log bytes.Buffer
		results, err := runFanout(ctx, []string{"-bin", bin, "-proto", "both", "-members", "50", "-messages", "5",
			"-rate", "50", "-join-conc", "8"}, &out, &log)
		t.Logf("output:\n%s%s", out.String(), log.String())
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != 2 || results[0].Proto != protoTCP || results[1].Proto != protoWS {
			t.Fatalf("%d results: want tcp then ws", len(results))
		}
		lo, hi := noticeBounds(50)
		for _, res := range results {
			if res.Expected != 5*49 || res.Delivered != res.Expected || res.Samples != uint64(res.Delivered) || res.Short != 0 {
				t.Errorf("%s: delivered %d of %d, %d latency samples, %d members short: want all 245, none short",
					res.Proto, res.Delivered, res.Expected, res.Samples, res.Short)
			}
			if res.Sent != 5 || res.Acks != 5 {
				t.Errorf("%s: sent %d, acked %d: want 5 and 5", res.Proto, res.Sent, res.Acks)
			}
			if res.JoinSetup <= 0 || res.NoticesTotal < lo || res.NoticesTotal > hi || res.NoticesSetup > res.NoticesTotal {
				t.Errorf("%s: join setup %s, notices %d during it and %d in all: want a setup time and %d..%d notices",
					res.Proto, res.JoinSetup, res.NoticesSetup, res.NoticesTotal, lo, hi)
			}
			if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 || res.Window <= 0 {
				t.Errorf("%s: latency p50=%s p99=%s max=%s, window %s: not ordered", res.Proto, res.P50, res.P99, res.Max, res.Window)
			}
			line := "fanout proto=" + res.Proto + " members=50 join_setup="
			if !strings.Contains(out.String(), line) {
				t.Errorf("no summary line %q in the output", line)
			}
		}
		for _, want := range []string{"deliveries=245/245 server_cpu_per_delivery=", "join setup: 50 joins answered in "} {
			if strings.Count(out.String(), want) != 2 {
				t.Errorf("output does not say %q once per protocol", want)
			}
		}
	})

	// Runs longer than a connection's limits: 5 members, 4 deliveries per chat.
	idleCfg := filepath.Join(t.TempDir(), "idle.yaml")
	writeFile(t, idleCfg, "hooks: {enabled: false}\nlimits: {idle_timeout: 1s}\n")
	for _, c := range []struct {
		name   string
		args   []string
		chats  int64
		longer time.Duration
		why    string
	}{
		// The connections have no deadline left from their login: the sender writes and
		// the members read for longer than -timeout after it.
		{"fanout/past-login-timeout", []string{"-messages", "100", "-rate", "25", "-timeout", "3s"}, 100, 3 * time.Second, "the 3s login timeout"},
		// Heartbeats keep the members alive through the gateway's idle timeout (1 s here,
		// 3 min by default: a 10,000-member join setup takes longer).
		{"fanout/heartbeats", []string{"-config", idleCfg, "-messages", "60", "-rate", "20", "-heartbeat", "300ms"}, 60, 2 * time.Second, "the 1s idle timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, log bytes.Buffer
			results, err := runFanout(ctx, append([]string{"-bin", bin, "-members", "5"}, c.args...), &out, &log)
			if err != nil {
				t.Fatalf("%v\noutput:\n%s%s", err, out.String(), log.String())
			}
			if res := results[0]; res.Delivered != 4*c.chats || res.Window < c.longer {
				t.Errorf("delivered %d in %s: want %d over more than %s", res.Delivered, res.Window, 4*c.chats, c.why)
			}
		})
	}

	// A gateway that refuses the logins makes the bench fail with exit code 1.
	t.Run("refused", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "jwt.yaml")
		writeFile(t, cfg, "auth:\n  mode: jwt\n  jwt:\n    secret: s3cret\n")
		var out, log bytes.Buffer
		code := run(ctx, []string{"idle", "-bin", bin, "-config", cfg, "-n", "5", "-settle", "10ms"}, &out, &log)
		if code != 1 || !strings.Contains(log.String(), "10008") {
			t.Errorf("exit code %d, stderr %q: want 1 and the refused login (10008)", code, log.String())
		}
	})
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.9, 9 * time.Millisecond}, {0.99, 9900 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got) > 1.04*float64(c.want) {
			t.Errorf("q%.2f = %s, want %s within +4%%", c.q, got, c.want)
		}
	}
	if h.Max() != 10*time.Millisecond || h.Count() != 10000 {
		t.Errorf("max %s count %d", h.Max(), h.Count())
	}
	for v := int64(0); v < 1<<20; v = v*5/4 + 1 {
		if i := histIndex(v); histUpper(i) < v || (i > 0 && histUpper(i-1) >= v) {
			t.Fatalf("value %d in bucket %d of upper bound %d", v, i, histUpper(i))
		}
	}
}

func TestLogField(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`time=x level=INFO msg="timgw ready" addr=127.0.0.1:4000`, "127.0.0.1:4000"},
		{`{"time":"x","level":"INFO","msg":"timgw ready","addr":"127.0.0.1:4001"}`, "127.0.0.1:4001"},
		{`time=x level=INFO msg="starting timgw" config="embedded defaults" listen=:0`, ""},
	} {
		if got := logField(c.line, "addr"); got != c.want {
			t.Errorf("logField(%q) = %q, want %q", c.line, got, c.want)
		}
	}
	if got := logField(`msg="starting timgw" config="embedded defaults" listen=:0`, "config"); got != "embedded defaults" {
		t.Errorf("config = %q", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFanoutFlags(t *testing.T) {
	for _, c := range []struct {
		args   []string
		protos []string
		extra  string
		err    string
	}{
		{args: nil, protos: []string{protoTCP}},
		{args: []string{"-proto", "both", "-notice-max", "200"}, protos: []string{protoTCP, protoWS}, extra: "groups: {notice_max_members: 200}\n"},
		{args: []string{"-proto", "ws", "-notice-max", "0"}, protos: []string{protoWS}, extra: "groups: {notice_max_members: 0}\n"},
		{args: []string{"-proto", "udp"}, err: `-proto "udp": want tcp or ws (or both)`},
		{args: []string{"-members", "1"}, err: "-members must be at least 2"},
		{args: []string{"-rate", "0"}, err: "-rate"},
		{args: []string{"-notice-max", "-2"}, err: "-notice-max -2"},
		{args: []string{"-notice-max", "5", "-config", "x.yaml"}, err: "use it without -config"},
		{args: []string{"-group", `a"b`}, err: "-group"},
		{args: []string{"-heartbeat", "-1s"}, err: "-heartbeat not negative"},
	} {
		o, gf, err := parseFanoutFlags(c.args, io.Discard)
		if c.err != "" {
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want a usage error with %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(o.protos, c.protos) || gf.extra != c.extra || o.members != 10000 || o.messages != 200 || o.rate != 20 {
			t.Errorf("%q: %v, protos %v, extra config %q, members %d messages %d rate %d: want %v, %q and the defaults 10000, 200, 20",
				c.args, err, o.protos, gf.extra, o.members, o.messages, o.rate, c.protos, c.extra)
		}
	}
}

// TestFanoutNoticeMaxUnknown runs -notice-max against a stand-in gateway that refuses the
// groups config key as a gateway without it does: the run fails and says why.
func TestFanoutNoticeMaxUnknown(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "old-timgw")
	writeFile(t, bin, "#!/bin/sh\necho 'timgw: config bench.yaml: parse: yaml: unmarshal errors:' >&2\n"+
		"echo '  line 9: field groups not found in type config.Config' >&2\nexit 1\n")
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-notice-max", "200"}, "this gateway binary does not know the config key groups.notice_max_members"},
		{nil, "gateway exited before it was ready"}, // without -notice-max the refusal is not blamed on it
	} {
		var out, log bytes.Buffer
		code := run(context.Background(), append([]string{"fanout", "-bin", bin, "-members", "2"}, c.args...), &out, &log)
		if code != 1 || !strings.Contains(log.String(), c.want) {
			t.Errorf("%q: exit code %d, stderr %q: want 1 and %q", c.args, code, log.String(), c.want)
		}
		if c.args == nil && strings.Contains(log.String(), "notice_max_members") {
			t.Errorf("without -notice-max: stderr %q names notice_max_members", log.String())
		}
	}
}
