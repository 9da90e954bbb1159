package lua

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// limitsEnv runs one message script under small limits, fail_closed, with a single Lua
// state so that the call after a failure reuses the stopped state.
func limitsEnv(t testing.TB, body string, timeout time.Duration) *testEnv {
	t.Helper()
	return newEnv(t, map[string]string{"s.lua": `
local big = string.rep("x", 4000)
return {message = function(msg)
  if msg.content == "ok" then msg.content = "fine"; return end
  ` + body + `
end}`}, func(c *config.Hooks) {
		c.PoolSize = 1
		c.Timeout = timeout
		c.MaxStringBytes = 4096
		c.MaxCallBytes = 64 << 10
		c.Message.Policy = config.PolicyFailClosed
	})
}

// checkStillWorks asserts that a normal message goes through after a failed call.
func checkStillWorks(t *testing.T, env *testEnv) {
	t.Helper()
	for i := 0; i < 2; i++ {
		if rep, c := env.send("u", "v", "ok"); rep.Action != hook.MessageRewrite || c.Content != "fine" {
			t.Fatalf("after the failure: %+v %q", rep, c.Content)
		}
	}
}

func TestStringLimits(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"table.concat", `local t = {} for i = 1, 1024 do t[i] = big end msg.content = table.concat(t)`, "table.concat: a result of 4096000 bytes exceeds hooks.max_string_bytes (4096)"},
		{"concat operator", `msg.content = big .. big`, "..: a result of 8000 bytes exceeds hooks.max_string_bytes"},
		{"concat chain", `msg.content = "a" .. big .. 1 .. big`, "..: a result of 8002 bytes exceeds"},
		{"concat doubling", `local s = "x" while true do s = s .. s end`, "..: a result of 8192 bytes exceeds"},
		{"string.rep", `msg.content = string.rep("ab", 1e9)`, "string.rep: a result of 2000000000 bytes exceeds"},
		{"string.rep overflow", `msg.content = string.rep(big, 2^62)`, "string.rep: a result of more than 2^63 bytes exceeds"},
		{"string.format", `msg.content = string.format("%s%s", big, big)`, "string.format: a result of 8260 bytes exceeds"},
		{"string.format width", `msg.content = string.format("%999999d", 1)`, "width or precision too long"},
		{"string.gsub string", `msg.content = string.gsub(string.rep("a", 900), "", "yyyyy")`, "string.gsub: a result of"},
		{"string.gsub function", `msg.content = string.gsub("abc", "%w", function() return big end)`, "string.gsub: a result of 8000 bytes"},
		{"string.upper", `msg.content = msg.content:upper()`, "string.upper: a result of 5000 bytes exceeds"},
		{"string.char", `local t = {} for i = 1, 5000 do t[i] = 65 end msg.content = string.char(unpack(t))`, "string.char: a result of 5000 bytes exceeds"},
		{"method call", `msg.content = big:rep(2)`, "string.rep: a result of 8000 bytes"},
		{"json_encode", `local v, err = tim.json_encode({big, big}); error(err, 0)`, "the JSON text would exceed hooks.max_string_bytes (4096)"},
		{"mask", `msg.content = tim.words({"x"}):mask("x x x x x x x x", string.rep("#", 1000))`, "m:mask: a result of 15000 bytes exceeds"},
		{"regex replace", `msg.content = tim.regex("x"):replace(big, "yy")`, "re:replace: a result of"},
		{"regex replace function", `msg.content = tim.regex("x+"):replace("x-x", function() return big end)`, "re:replace: a result of 8001 bytes"},
		{"pattern too complex", `msg.content = string.find("x", string.rep("(", 40))`, "too many captures"},
		{"per-call budget", `for i = 1, 100 do local s = big .. i end`, "..: this call built more than hooks.max_call_bytes (65536) of strings"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := limitsEnv(t, tt.body, time.Second)
			start := time.Now()
			content := "go"
			if tt.name == "string.upper" {
				content = strings.Repeat("y", 5000) // the only way to a long string
			}
			rep, _ := env.send("u", "v", content)
			if took := time.Since(start); took > time.Second {
				t.Errorf("the limit stopped the call after %v", took)
			}
			if rep.Action != hook.MessageReject {
				t.Fatalf("over the limit: %+v", rep)
			}
			if logs := env.logs.String(); !strings.Contains(logs, tt.want) || !strings.Contains(logs, "kind=error") {
				t.Errorf("error not naming the limit (want %q):\n%s", tt.want, logs)
			}
			checkStillWorks(t, env)
		})
	}
}

// TestStringsWithinLimits checks the bounded functions still do their job.
func TestStringsWithinLimits(t *testing.T) {
	env := newEnv(t, map[string]string{"s.lua": `
return {message = function(msg)
  local parts = {
    string.gsub("hello world", "o", "0"),
    (string.gsub("hello world", "(%w+) (%w+)", "%2 %1")),
    (string.gsub("abc", "%w", {a = "1", b = true and "2"})),
    (string.gsub("abc", "%w", function(c) if c == "b" then return nil end return c:upper() end)),
    (string.gsub("a.b", "%.", "%%")),
    (string.gsub("abc", "", "-")),
    (string.gsub("aaa", "a", "b", 2)),
    table.concat({string.find("hello world", "o w")}, ":"), table.concat({string.find("hello", "l+")}, ":"),
    table.concat({string.find("a.b", ".", 1, true)}, ":"), table.concat({("key = val"):find("(%w+) = (%w+)")}, ":"),
    tostring(string.find("abc", "b", -1)), table.concat({string.find("abc", "^b")}, ":") .. "|" .. tostring(string.find("abc", "^a")),
    string.match("f(a(b)c)d", "%b()"), string.match("THE (quick) fox", "%f[%a]%a+", 5), string.match("abab", "(ab)%1"),
    table.concat({string.match("hello", "()ll()")}, ":"), string.match("  trim  ", "^%s*(.-)%s*$") .. "|",
    string.match("2024-01-02", "(%d+)-(%d+)-(%d+)"), tostring(string.match("abc", "x")), string.match("a+b", "[%+]"),
    string.match("x9", "[^%a]"), string.match("a-z", "[a%-z]+"), string.match("end$", "d%$"), (string.gsub("a b", "%s", "%%")),
    (string.gsub("hello world", "%w+", "<%0>")), (string.gsub("abc", "^a", "X")), (string.gsub("abc", "$", "!")),
    (function() local o = {} for k, v in string.gmatch("a=1, b=2", "(%w+)=(%w+)") do o[#o + 1] = k .. v end for w in ("x y"):gmatch("%a") do o[#o + 1] = w end return table.concat(o) end)(),
    string.format("%5.2f|%-3s|%q", 3.14159, "x", 'a"b'),
    string.char(104, 105), ("Ab"):upper() .. ("Ab"):lower(), string.rep("ab", 3),
    table.concat({1, 2, 3}, "+"), table.concat({"a", "b", "c"}, "", 2, 3),
    tim.regex("(\\w)(\\d)"):replace("a1 b2", "$2$1"),
    tim.regex("\\d"):replace("a1 b2", function(d) return "<" .. d .. ">" end),
    tim.regex("\\d"):replace("a1 b2", function(d) if d == "1" then return nil end return "#" end),
    (tim.words({"bad"}):mask("so bad", "-")),
    tim.json_encode({a = {1, 2}}),
    1 .. 2,
    table.concat(tim.regex("\\d"):find_all("a1 b2"), ""),
    (function() local all = tim.regex("(\\w)(\\d)?"):find_all("a1 b") return all[1][1] .. all[1][2] .. all[1][3] .. all[2][1] .. "[" .. all[2][3] .. "]" end)(),
  }
  msg.content = table.concat(parts, ",")
end}`}, nil)
	want := "hell0 w0rld,world hello,12c,AbC,a%b,-a-b-c-,bba,5:7,3:4,2:2,1:9:key:val,nil,|1,(a(b)c),quick,ab,3:5,trim|,2024,nil,+,9,a-z,d$,a%b,<hello> <world>,Xbc,abc!,a1b2xy, 3.14|x  |\"a\\\"b\",hi,ABab,ababab,1+2+3,bc,1a 2b,a<1> b<2>,a1 b#,so ---,{\"a\":[1,2]},12,12,a1a1b[]"
	if _, c := env.send("u", "v", "x"); c.Content != want {
		t.Errorf("got  %s\nwant %s", c.Content, want)
	}
}

func TestDeadlineHolds(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tt := range []struct{ name, body string }{
		{"tail recursion", `local function f(n) return f(n + 1) end return f(0)`},
		{"tail recursion in pcall", `while true do pcall(function() local function f(n) return f(n + 1) end return f(0) end) end`},
		{"tail recursion in xpcall", `local function f(n) return f(n + 1) end while true do xpcall(function() return f(0) end, function(e) while true do end end) end`},
		{"pcall recursion", `local function f() return pcall(f) end; while true do f() end`},
		{"mutual tail recursion", `local g; local function f(n) return g(n) end; g = function(n) return f(n + 1) end; return f(0)`},
		{"gsub callback loop", `string.gsub("aaaa", "a", function(c) while true do end end)`},
		{"backtracking find", `msg.content = tostring(string.find(string.rep("a", 300), ".-.-.-.-b"))`},
		{"backtracking gsub", `msg.content = string.gsub(string.rep("a", 300), ".-.-.-.-b", "")`},
		{"backtracking gmatch", `for w in string.gmatch(string.rep("a", 300), ".-.-.-.-b") do end`},
		{"replace callback loop", `tim.regex("a"):replace("aaaa", function(c) while true do end end)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := limitsEnv(t, tt.body, timeout)
			start := time.Now()
			rep, _ := env.send("u", "v", "go")
			took := time.Since(start)
			if rep.Action != hook.MessageReject {
				t.Fatalf("runaway script: %+v", rep)
			}
			// The goal; it is the whole slack for a loaded machine (they stop about
			// 10-30 ms after the timeout; BenchmarkRunawayScript measures it).
			if took > 2*timeout {
				t.Errorf("stopped after %v, timeout %v", took, timeout)
			}
			if logs := env.logs.String(); !strings.Contains(logs, "kind=timeout") || !strings.Contains(logs, "hooks.timeout (200ms)") {
				t.Errorf("timeout not logged with its limit:\n%s", logs)
			}
			checkStillWorks(t, env)
		})
	}
}

func TestErrorTraceNamesHook(t *testing.T) {
	env := newEnv(t, map[string]string{"s.lua": `
local function helper() error("boom") end
return {
  message = function(msg) helper() end,
  join = function(j) local t = nil; return t.x end,
}`}, nil)
	env.send("u", "v", "x")
	env.rt.Join(context.Background(), &hook.JoinRequest{User: "u", Group: "g"})
	logs := env.logs.String()
	for _, want := range []string{
		`error="s.lua:2: boom"`, `s.lua:2: in function 'helper'`, `s.lua:4: in message hook`,
		`s.lua:5: in join hook`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "main chunk") {
		t.Errorf("a hook function is called main chunk:\n%s", logs)
	}
}
