package lua

import (
	"context"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// TestCallFrame drives the frame every entry point runs in: a body that panics or a
// Lua state that cannot be had gives the policy's failure reply; a panicking state is
// discarded, never pooled again, and the next call gets a working one.
func TestCallFrame(t *testing.T) {
	const script = `return {connect = function(c) if c.addr == "bad" then return "deny", "bad addr" end end}`
	cases := []struct {
		name      string
		policy    string
		cancelled bool // the context is done and no state is free
		panics    bool
		want      hook.ConnectReply
	}{
		{name: "panic, fail open", policy: config.PolicyFailOpen, panics: true, want: hook.ConnectReply{}},
		{name: "panic, fail closed", policy: config.PolicyFailClosed, panics: true,
			want: hook.ConnectReply{Deny: true, Reason: "connection refused: connect hook failed"}},
		{name: "no state, fail open", policy: config.PolicyFailOpen, cancelled: true, want: hook.ConnectReply{}},
		{name: "no state, fail closed", policy: config.PolicyFailClosed, cancelled: true,
			want: hook.ConnectReply{Deny: true, Reason: "connection refused: connect hook failed"}},
		{name: "body runs", policy: config.PolicyFailClosed, want: hook.ConnectReply{Script: "body"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, map[string]string{"a.lua": script}, func(c *config.Hooks) {
				c.PoolSize = 1
				c.Connect.Policy = tc.policy
			})
			r, g := env.rt, env.rt.gen.Load()
			ctx := context.Background()
			if tc.cancelled {
				held, err := r.acquire(ctx, g) // the only state is busy
				if err != nil {
					t.Fatal(err)
				}
				defer r.release(held)
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			ran := false
			got := call(ctx, r, g, pConnect, func() hook.ConnectReply { return denyConnect(g, "") }, connectDecision,
				func(v *vm) hook.ConnectReply {
					ran = true
					if tc.panics {
						panic("boom")
					}
					return hook.ConnectReply{Script: "body"}
				})
			if got != tc.want {
				t.Errorf("reply %+v, want %+v", got, tc.want)
			}
			if ran == tc.cancelled {
				t.Errorf("body ran: %v, want %v", ran, !tc.cancelled)
			}
			if tc.cancelled {
				return
			}
			wantLive := int64(1)
			if tc.panics {
				wantLive = 0
				if !strings.Contains(env.logs.String(), "panic in connect hook: boom") {
					t.Errorf("panic not logged: %s", env.logs.String())
				}
			}
			if n := r.liveVMs.Load(); n != wantLive {
				t.Errorf("%d live states after the call, want %d", n, wantLive)
			}
			// The next call runs the script on a working state.
			if rep := r.Connect(context.Background(), &hook.ConnectRequest{Addr: "bad"}); !rep.Deny || rep.Reason != "bad addr" {
				t.Errorf("next call: %+v", rep)
			}
		})
	}
}
