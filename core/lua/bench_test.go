package lua

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportLatency reports p50/p99 of lat and the process CPU time per op since cpu0
// (CPU time is steadier than wall time on a shared machine).
func reportLatency(b *testing.B, lat []time.Duration, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
}

// benchWords returns n banned words: "badword" and pseudo-random lowercase words.
func benchWords(n int) []any {
	r := rand.New(rand.NewPCG(1, 2))
	words := []any{"badword"}
	for len(words) < n {
		b := make([]byte, 5+r.IntN(6))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		words = append(words, string(b))
	}
	return words
}

// benchTexts are chat contents: ordinary sentences, one in eight with a banned word.
var benchTexts = func() []string {
	base := []string{
		"hey, are we still on for lunch tomorrow at noon?",
		"I pushed the fix to the branch, can you review it when you have a minute",
		"ok",
		"The meeting moved to 3pm, room 4B. Bring the quarterly numbers please.",
		"haha that is hilarious, send me the link",
		"早上好，今天的会议改到下午三点",
		"Can you call me back? It's about the delivery schedule for next week.",
		"what a badword thing to say",
	}
	var out []string
	for i := 0; i < 64; i++ {
		out = append(out, fmt.Sprintf("%s #%d", base[i%len(base)], i))
	}
	return out
}()

// newModerationBench starts a Runtime on the shipped moderation.lua with 200 words,
// the rate limit and flood counters on but never reached.
func newModerationBench(b *testing.B, pool int) *Runtime {
	b.Helper()
	cfg := config.DefaultHooks()
	cfg.Dir = "../../scripts"
	cfg.Scripts = []string{"moderation.lua"}
	cfg.PoolSize = pool
	cfg.Vars = map[string]any{"moderation": map[string]any{
		"action":       "mask",
		"words":        benchWords(200),
		"rate_limit":   1 << 40,
		"flood_max":    1 << 40,
		"flood_window": 30,
	}}
	rt, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close() })
	return rt
}

// BenchmarkModeration200Words measures the message hook with the shipped moderation
// script (200 words, masking, rate limit and flood counters) on one goroutine, and
// reports the per-call p50 and p99.
func BenchmarkModeration200Words(b *testing.B) {
	rt := newModerationBench(b, 1)
	ctx := context.Background()
	chats := make([]packet.Chat, len(benchTexts))
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user%d", i)
	}
	lat := make([]time.Duration, 0, min(b.N, 1<<20))
	req := &hook.MessageRequest{Protocol: hook.ProtocolTCP}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		c := &chats[i%len(chats)]
		u := users[i%len(users)]
		*c = packet.Chat{From: packet.Str(u), To: "peer", ChatType: packet.ChatTypePrivate, Content: benchTexts[i%len(benchTexts)]}
		req.Sender, req.Chat = u, c
		t0 := time.Now()
		rep := rt.Message(ctx, req)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		if rep.Action == hook.MessageReject {
			b.Fatalf("rejected: %+v", rep)
		}
	}
	b.StopTimer()
	reportLatency(b, lat, cpu0)
}

// BenchmarkModeration200WordsParallel is the same from GOMAXPROCS goroutines sharing
// the pool (4 states per CPU).
func BenchmarkModeration200WordsParallel(b *testing.B) {
	rt := newModerationBench(b, 0)
	ctx := context.Background()
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		req := &hook.MessageRequest{Protocol: hook.ProtocolTCP}
		var c packet.Chat
		lat := make([]time.Duration, 0, 1<<16)
		i := rand.IntN(1000)
		for pb.Next() {
			i++
			u := fmt.Sprint("user", i%1000)
			c = packet.Chat{From: packet.Str(u), To: "peer", ChatType: packet.ChatTypePrivate, Content: benchTexts[i%len(benchTexts)]}
			req.Sender, req.Chat = u, &c
			t0 := time.Now()
			rt.Message(ctx, req)
			if len(lat) < cap(lat) {
				lat = append(lat, time.Since(t0))
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	reportLatency(b, all, cpu0)
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
}

// BenchmarkMessageNoScript is the cost of the message hook when no script hooks it.
func BenchmarkMessageNoScript(b *testing.B) {
	dir := b.TempDir()
	writeFiles(b, dir, map[string]string{"a.lua": `return {auth = function() end}`})
	rt, err := New(testCfg(dir), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	req := &hook.MessageRequest{Sender: "u", Chat: chat("u", "v", "hello")}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rt.Message(context.Background(), req)
	}
}

// BenchmarkMatcher200Words is the Go word matcher alone on one text.
func BenchmarkMatcher200Words(b *testing.B) {
	var words []string
	for _, w := range benchWords(200) {
		words = append(words, w.(string))
	}
	m := NewMatcher(words, true)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Mask(benchTexts[i%len(benchTexts)], "*")
	}
}

// BenchmarkPlainLuaBaseline runs plain gopher-lua (a reused table with 4 fields set per
// call, 20 plain string.find; 3.3-4 us per call on a 2-core machine) to tell how loaded
// the machine is when the other numbers are taken.
func BenchmarkPlainLuaBaseline(b *testing.B) {
	L := glua.NewState()
	defer L.Close()
	if err := L.DoString(`
local words = {}
for i = 1, 20 do words[i] = "word" .. i end
function moderate(msg)
  local c, f, t, g = msg.content, msg.from, msg.to, msg.groupId
  for i = 1, #words do
    if string.find(c, words[i], 1, true) then return "reject" end
  end
end`); err != nil {
		b.Fatal(err)
	}
	fn := L.GetGlobal("moderate")
	t := L.NewTable()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t.RawSetString("content", glua.LString(benchTexts[i%len(benchTexts)]))
		t.RawSetString("from", glua.LString("alice"))
		t.RawSetString("to", glua.LString("bob"))
		t.RawSetString("groupId", glua.LString(""))
		if err := L.CallByParam(glua.P{Fn: fn, NRet: 1, Protect: true}, t); err != nil {
			b.Fatal(err)
		}
		L.Pop(1)
	}
}

// BenchmarkContextWithTimeout is what a context.WithTimeout per call would cost (1-1.5 us
// and 4 allocations with its cancel on a 2-core machine); deadline.go explains why a VM
// keeps one context instead.
func BenchmarkContextWithTimeout(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if ctx.Err() != nil {
			b.Fatal(ctx.Err())
		}
		cancel()
	}
}

// BenchmarkRunawayScript measures how long a runaway tail recursion runs under a 50 ms
// timeout (ms/op: the whole call; overshoot-ms: past the timeout).
func BenchmarkRunawayScript(b *testing.B) {
	env := limitsEnv(b, `local function f(n) return f(n + 1) end return f(0)`, 50*time.Millisecond)
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		env.send("u", "v", "go")
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/op")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N)-50, "overshoot-ms")
}
