package lua

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

func TestConfigValidate(t *testing.T) {
	if err := func() *config.Hooks { h := config.DefaultHooks(); return &h }().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(*config.Hooks)
		want   string
	}{
		{"empty dir", func(h *config.Hooks) { h.Dir = "" }, "hooks.dir"},
		{"zero timeout", func(h *config.Hooks) { h.Timeout = 0 }, "hooks.timeout"},
		{"huge timeout", func(h *config.Hooks) { h.Timeout = time.Minute }, "hooks.timeout"},
		{"pool", func(h *config.Hooks) { h.PoolSize = -1 }, "hooks.pool_size"},
		{"path", func(h *config.Hooks) { h.Scripts = []string{"../etc/x.lua"} }, "hooks.scripts[0]"},
		{"bad pattern", func(h *config.Hooks) { h.Scripts = []string{"[x"} }, "bad pattern"},
		{"policy", func(h *config.Hooks) { h.Auth.Policy = "open" }, "hooks.auth.policy"},
		{"missing policy", func(h *config.Hooks) { h.Message.Policy = "" }, "hooks.message.policy"},
		{"order pattern", func(h *config.Hooks) { h.Join.Order = []string{"*.lua"} }, "hooks.join.order[0]"},
		{"empty var", func(h *config.Hooks) { h.Vars[" "] = 1 }, "hooks.vars"},
	} {
		h := config.DefaultHooks()
		tt.mutate(&h)
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	h := config.DefaultHooks()
	h.Disconnect.Policy = ""
	if err := h.Validate(); err != nil {
		t.Errorf("disconnect needs no policy: %v", err)
	}
}

func TestDisabled(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `return {message = function() return "reject" end}`}, func(c *config.Hooks) { c.Enabled = false })
	if rep, _ := env.send("u", "v", "x"); rep.Action != hook.MessagePass {
		t.Errorf("disabled hooks ran: %+v", rep)
	}
	if st := env.rt.Status(); len(st) != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestClosedRuntimePasses(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `return {message = function() return "reject" end}`}, nil)
	env.rt.Close()
	if rep, _ := env.send("u", "v", "x"); rep.Action != hook.MessagePass {
		t.Errorf("closed runtime ran hooks: %+v", rep)
	}
	if err := env.rt.Reload(testCfg(env.dir)); err == nil {
		t.Error("reload after close")
	}
}

func TestPoolExhaustion(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `
return {message = function(msg)
  if msg.content == "slow" then local t = tim.now(); while tim.now() - t < 300 do end end
end}`}, func(c *config.Hooks) {
		c.PoolSize = 1
		c.Timeout = 2 * time.Second
		c.Message.Policy = config.PolicyFailClosed
	})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		close(started)
		env.send("u", "v", "slow")
	}()
	<-started
	time.Sleep(50 * time.Millisecond) // the only state is busy
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep := env.rt.Message(ctx, &hook.MessageRequest{Sender: "u", Chat: chat("u", "v", "fast")})
	if rep.Action != hook.MessageReject || time.Since(start) > 200*time.Millisecond {
		t.Errorf("waiting for a state: %+v after %v", rep, time.Since(start))
	}
	wg.Wait()
	if rep, _ := env.send("u", "v", "fast"); rep.Action != hook.MessagePass {
		t.Errorf("after the slow call: %+v", rep)
	}
}

func TestConcurrentCalls(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `
return {message = function(msg, ctx)
  local n = tim.incr("total", 1, 60)
  msg.content = ctx.user .. ":" .. msg.content
end}`}, func(c *config.Hooks) {
		c.PoolSize = 3
		c.Timeout = 5 * time.Second // wall-clock; waiting for a state is bounded by it too
	})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			user := string(rune('a' + g))
			for i := 0; i < 200; i++ {
				rep, c := env.send(user, "v", "m")
				if rep.Action != hook.MessageRewrite || c.Content != user+":m" {
					errs <- errors.New("bad reply " + c.Content)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := env.rt.Counters().Get("total"); n != 1600 {
		t.Errorf("total %d", n)
	}
	if n := env.rt.liveVMs.Load(); n > 3 {
		t.Errorf("%d states, pool size 3", n)
	}
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.lua": `
return {message = function(msg)
  if msg.content == "boom" then error("boom") end
  if msg.content == "loop" then while true do end end
  if msg.content == "no" then return "reject" end
end}`})
	reg := prometheus.NewRegistry()
	cfg := testCfg(dir)
	cfg.Timeout = 100 * time.Millisecond
	rt, err := New(cfg, Options{Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for _, content := range []string{"ok", "no", "boom", "loop"} {
		rt.Message(context.Background(), &hook.MessageRequest{Sender: "u", Chat: chat("u", "v", content)})
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName() + labels(m)
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"timgw_hook_duration_seconds{hook=message}":                         4,
		"timgw_hook_decisions_total{decision=pass,hook=message}":            3,
		"timgw_hook_decisions_total{decision=reject,hook=message}":          1,
		"timgw_hook_failures_total{hook=message,kind=error,script=a.lua}":   1,
		"timgw_hook_failures_total{hook=message,kind=timeout,script=a.lua}": 1,
		"timgw_hook_reloads_total":                                          1,
		"timgw_hook_calls_total{hook=message,script=a.lua}":                 4,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if _, err := New(cfg, Options{Registerer: reg}); err == nil {
		t.Error("second Runtime on one registry accepted")
	}
}

func labels(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestPoolWaiters has many more callers than states: every call gets one.
func TestPoolWaiters(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `
return {message = function(msg) local t = tim.now(); while tim.now() - t < 2 do end; msg.content = "ok" end}`}, func(c *config.Hooks) {
		c.PoolSize = 2
		c.Timeout = 5 * time.Second
		c.Message.Policy = config.PolicyFailClosed
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if rep, c := env.send("u", "v", "x"); rep.Action != hook.MessageRewrite || c.Content != "ok" {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if bad != 0 {
		t.Errorf("%d calls failed waiting for a state", bad)
	}
}

func TestZeroHooksConfigIsValid(t *testing.T) {
	var h config.Hooks
	if err := h.Validate(); err != nil {
		t.Errorf("zero (disabled) hooks config: %v", err)
	}
	rt, err := New(h, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if rep := rt.Message(context.Background(), &hook.MessageRequest{Chat: chat("a", "b", "badword")}); rep.Action != hook.MessagePass {
		t.Errorf("%+v", rep)
	}
}
