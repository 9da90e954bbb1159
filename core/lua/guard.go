package lua

import (
	"regexp"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/hook"
)

// A guard is what a script declares, at load, with tim.guard{...}: the conditions under
// which its message hook has anything to do (a banned word, a regexp, a sender over a
// rate, a repeated message). Go evaluates them before a Lua state is taken: a message
// that fires no guard of a guarded script skips that script, and when every message
// script of the chain is guarded and none fires, the message never enters Lua. The
// script sees which guard fired in ctx.guard ("rate", "flood", "words" or "regex", in that
// order of precedence).
type guard struct {
	script      string
	rateKey     string // counter keys, built once at load (not per message)
	floodKey    string
	words       []*Matcher
	re          *regexp.Regexp
	rateLimit   int64
	rateWindow  time.Duration
	floodMax    int64
	floodWindow time.Duration
	exempt      map[string]bool
}

// fire returns the name of the first guard that fires for chat (and counts the message
// in the rate and flood counters), or "" when none does.
func (gd *guard) fire(r *Runtime, req *hook.MessageRequest) string {
	from := string(req.Chat.From)
	if gd.exempt[from] {
		return ""
	}
	fired := ""
	if gd.rateLimit > 0 && r.counters.IncrSub(gd.rateKey, from, 1, gd.rateWindow) > gd.rateLimit {
		fired = "rate"
	}
	content := req.Chat.Content
	if gd.floodMax > 0 && r.counters.IncrSub2(gd.floodKey, from, content, 1, gd.floodWindow) > gd.floodMax && fired == "" {
		fired = "flood"
	}
	if fired != "" || content == "" {
		return fired
	}
	for _, m := range gd.words {
		if _, ok := m.Find(content); ok {
			return "words"
		}
	}
	if gd.re != nil && gd.re.MatchString(content) {
		return "regex"
	}
	return ""
}

// timGuard is tim.guard{words=, words_file=, whole_words=, regex=, rate={limit, window},
// flood={max, window}, exempt={...}}, called at load time only.
func (v *vm) timGuard(L *lua.LState) int {
	if v.curPoint != pLoad {
		L.RaiseError("tim.guard is called when the script loads (at its top level), not in a hook")
	}
	t := L.CheckTable(1)
	if v.guarding == nil {
		return 0 // a state running the script: the generation holds the guard already
	}
	gd := &guard{script: v.cur.name, rateKey: "guard:rate:" + v.cur.name, floodKey: "guard:flood:" + v.cur.name}
	whole := lua.LVAsBool(t.RawGetString("whole_words"))
	for _, key := range []string{"words", "words_file"} {
		w := t.RawGetString(key)
		if w == lua.LNil || w == lua.LString("") {
			continue
		}
		if m := v.matcher(L, w, whole, 1); m.Len() > 0 {
			gd.words = append(gd.words, m)
		}
	}
	if p, ok := t.RawGetString("regex").(lua.LString); ok && p != "" {
		re, err := v.rt.regexes.get(string(p))
		if err != nil {
			L.ArgError(1, "regex: "+err.Error())
		}
		gd.re = re
	}
	gd.rateLimit, gd.rateWindow = limitWindow(L, t, "rate", "limit")
	gd.floodMax, gd.floodWindow = limitWindow(L, t, "flood", "max")
	if x, ok := t.RawGetString("exempt").(*lua.LTable); ok {
		list, err := stringList(x)
		if err != nil {
			L.ArgError(1, "exempt: "+err.Error())
		}
		gd.exempt = make(map[string]bool, len(list))
		for _, u := range list {
			gd.exempt[u] = true
		}
	}
	*v.guarding = gd
	return 0
}

// limitWindow reads {limit|max = n, window = seconds} at t[name]; 0, 0 when absent or n is 0.
func limitWindow(L *lua.LState, t *lua.LTable, name, count string) (int64, time.Duration) {
	x, ok := t.RawGetString(name).(*lua.LTable)
	if !ok {
		return 0, 0
	}
	n := int64(lua.LVAsNumber(x.RawGetString(count)))
	w := float64(lua.LVAsNumber(x.RawGetString("window")))
	if n <= 0 {
		return 0, 0
	}
	if w <= 0 || w > 30*24*3600 {
		L.ArgError(1, name+".window must be > 0 seconds and at most 30 days")
	}
	return n, time.Duration(w * float64(time.Second))
}
