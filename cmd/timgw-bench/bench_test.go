package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
