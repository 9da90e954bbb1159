package lua

import (
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
)

func TestZZExp(t *testing.T) {
	for _, body := range []string{
		`local function f(n) return f(n+1) end return f(0)`,
		`local function f() return pcall(f) end; while true do f() end`,
		`local function f(n) if n > 0 then return f(n-1) end return 0 end while true do f(100) end`,
		`while true do end`,
		`local t = {} local s = string.rep("x", 1048576) for i=1,1024 do t[i]=s end msg.content = table.concat(t)`,
	} {
		env := newEnv(t, map[string]string{"loop.lua": `return {message = function(msg) ` + body + ` end}`}, func(c *config.Hooks) {
			c.PoolSize = 1
			c.Timeout = 50 * time.Millisecond
			c.Message.Policy = config.PolicyFailClosed
		})
		for i := 0; i < 3; i++ {
			start := time.Now()
			rep, _ := env.send("u", "v", "loop")
			t.Logf("%v %q %v", time.Since(start), rep.Reason, rep.Action)
		}
		t.Log(env.logs.String()[:min(600, len(env.logs.String()))])
	}
}
