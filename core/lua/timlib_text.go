package lua

import (
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	lua "github.com/yuin/gopher-lua"
)

const (
	matcherType = "tim.words"
	regexType   = "tim.regex"
	// maxRegexes bounds the regexp cache; patterns beyond it are compiled per call
	// of tim.regex and not cached.
	maxRegexes = 1024
)

// tim.words(list_or_file [, {whole_words=true}]) → a matcher with :find(text),
// :find_all(text), :mask(text [, mask]) and :count(). The argument is a list of words
// or the name of a word-list file of the scripts directory ("banned" or "banned.txt").
// Matchers are compiled once per script set and shared by every Lua state.
func (v *vm) timWords(L *lua.LState) int {
	whole := false
	if opts := L.OptTable(2, nil); opts != nil {
		whole = lua.LVAsBool(opts.RawGetString("whole_words"))
	}
	m := v.matcher(L, L.Get(1), whole, 1)
	ud := L.NewUserData()
	ud.Value = m
	L.SetMetatable(ud, L.GetTypeMetatable(matcherType))
	L.Push(ud)
	return 1
}

// matcher returns the generation's shared matcher of a list of words or a word-list
// file name (argument arg of the calling function, for errors).
func (v *vm) matcher(L *lua.LState, words lua.LValue, whole bool, arg int) *Matcher {
	var (
		list []string
		key  string
	)
	switch w := words.(type) {
	case lua.LString:
		name := string(w)
		l, ok := v.gen.words[name]
		if !ok {
			l, ok = v.gen.words[name+".txt"]
		}
		if !ok {
			L.ArgError(arg, "no word-list file "+name+" in the scripts directory")
		}
		list, key = l, "file:"+name
	case *lua.LTable:
		l, err := stringList(w)
		if err != nil {
			L.ArgError(arg, err.Error())
		}
		list, key = l, "list:"+strings.Join(l, "\x00")
	default:
		L.ArgError(arg, "want a list of words or a word-list file name")
	}
	if whole {
		key = "w" + key
	}
	return v.gen.matchers.get(key, func() *Matcher { return NewMatcher(list, whole) })
}

func (v *vm) registerMatcherType() {
	L := v.L
	mt := L.NewTypeMetatable(matcherType)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"find":     matcherFind,
		"find_all": matcherFindAll,
		"mask":     v.matcherMask,
		"count":    matcherCount,
	}))
}

func checkMatcher(L *lua.LState) *Matcher {
	if m, ok := L.CheckUserData(1).Value.(*Matcher); ok {
		return m
	}
	L.ArgError(1, "tim.words matcher expected")
	return nil
}

// m:find(text) → word, start, end (1-based, inclusive) of the first match, or nil.
func matcherFind(L *lua.LState) int {
	m := checkMatcher(L)
	mt, ok := m.Find(L.CheckString(2))
	if !ok {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(mt.Word))
	L.Push(lua.LNumber(mt.Start + 1))
	L.Push(lua.LNumber(mt.End))
	return 3
}

// m:find_all(text) → list of the words found (with repeats).
func matcherFindAll(L *lua.LState) int {
	m := checkMatcher(L)
	all := m.FindAll(L.CheckString(2))
	t := L.CreateTable(len(all), 0)
	for _, mt := range all {
		t.Append(lua.LString(mt.Word))
	}
	L.Push(t)
	return 1
}

// m:mask(text [, mask]) → text with each rune of each match replaced by mask ("*"),
// and the number of matches.
func (v *vm) matcherMask(L *lua.LState) int {
	m := checkMatcher(L)
	text := L.Get(2)
	s, ok := text.(lua.LString)
	if !ok {
		s = lua.LString(L.CheckString(2))
	}
	mask := L.OptString(3, "*")
	if len(mask) > 1 {
		v.produce(L, "m:mask", maskSize(string(s), mask))
	}
	out, n := m.Mask(string(s), mask)
	if n == 0 {
		L.Push(text) // the same string value: no copy
	} else {
		L.Push(lua.LString(out))
	}
	L.Push(lua.LNumber(n))
	return 2
}

// m:count() → the number of words.
func matcherCount(L *lua.LState) int {
	L.Push(lua.LNumber(checkMatcher(L).Len()))
	return 1
}

// regexCache holds compiled regexps by pattern, for every Lua state of a Runtime.
type regexCache struct {
	m sync.Map // pattern -> *regexp.Regexp
	n atomic.Int32
}

func (c *regexCache) get(pattern string) (*regexp.Regexp, error) {
	if re, ok := c.m.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	if c.n.Load() < maxRegexes {
		if _, loaded := c.m.LoadOrStore(pattern, re); !loaded {
			c.n.Add(1)
		}
	}
	return re, nil
}

// tim.regex(pattern) → a Go regexp (RE2 syntax) with :match(text), :find(text),
// :find_all(text [, n]), :replace(text, repl). A bad pattern is a Lua error.
func (v *vm) timRegex(L *lua.LState) int {
	re, err := v.rt.regexes.get(L.CheckString(1))
	if err != nil {
		L.ArgError(1, err.Error())
	}
	ud := L.NewUserData()
	ud.Value = re
	L.SetMetatable(ud, L.GetTypeMetatable(regexType))
	L.Push(ud)
	return 1
}

func (v *vm) registerRegexType() {
	L := v.L
	mt := L.NewTypeMetatable(regexType)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"match":    regexMatch,
		"find":     regexFind,
		"find_all": regexFindAll,
		"replace":  v.regexReplace,
	}))
}

func checkRegex(L *lua.LState) *regexp.Regexp {
	if re, ok := L.CheckUserData(1).Value.(*regexp.Regexp); ok {
		return re
	}
	L.ArgError(1, "tim.regex expected")
	return nil
}

// re:match(text) → whether the pattern matches.
func regexMatch(L *lua.LState) int {
	L.Push(lua.LBool(checkRegex(L).MatchString(L.CheckString(2))))
	return 1
}

// re:find(text) → the first match and its submatches, or nil.
func regexFind(L *lua.LState) int {
	sub := checkRegex(L).FindStringSubmatch(L.CheckString(2))
	if sub == nil {
		L.Push(lua.LNil)
		return 1
	}
	for _, s := range sub {
		L.Push(lua.LString(s))
	}
	return len(sub)
}

// re:find_all(text [, n]) → list of matches (at most n; all when n is absent). When the
// pattern has capture groups, each match is a list {match, group1, group2, ...} (a
// group that did not take part is "").
func regexFindAll(L *lua.LState) int {
	re := checkRegex(L)
	text, n := L.CheckString(2), L.OptInt(3, -1)
	if re.NumSubexp() == 0 {
		all := re.FindAllString(text, n)
		t := L.CreateTable(len(all), 0)
		for _, s := range all {
			t.Append(lua.LString(s))
		}
		L.Push(t)
		return 1
	}
	all := re.FindAllStringSubmatch(text, n)
	t := L.CreateTable(len(all), 0)
	for _, groups := range all {
		g := L.CreateTable(len(groups), 0)
		for _, s := range groups {
			g.Append(lua.LString(s))
		}
		t.Append(g)
	}
	L.Push(t)
	return 1
}

// re:replace(text, repl) → text with every match replaced: repl is a string ($1
// expands submatches) or a function called with the match and its submatches, whose
// string result replaces it (nil or false keeps the match). The result is bounded as it
// grows (limits.go).
func (v *vm) regexReplace(L *lua.LState) int {
	re := checkRegex(L)
	text := L.CheckString(2)
	repl := L.Get(3)
	fn, isFn := repl.(*lua.LFunction)
	tmpl := ""
	if !isFn {
		tmpl = L.CheckString(3)
	}
	dollars := strings.Count(tmpl, "$")
	var out []byte
	last := 0
	for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
		out = append(out, text[last:m[0]]...)
		if isFn {
			L.Push(fn)
			for k := 0; k < len(m); k += 2 {
				if m[k] < 0 {
					L.Push(lua.LNil)
				} else {
					L.Push(lua.LString(text[m[k]:m[k+1]]))
				}
			}
			L.Call(len(m)/2, 1)
			r := L.Get(-1)
			L.Pop(1)
			if r == lua.LNil || r == lua.LFalse {
				out = append(out, text[m[0]:m[1]]...)
			} else if s, ok := r.(lua.LString); ok {
				out = append(out, s...)
			} else if n, ok := r.(lua.LNumber); ok {
				out = append(out, n.String()...)
			} else {
				L.RaiseError("re:replace: the function returned a %s, want a string", r.Type())
			}
		} else {
			// Submatches lie within the match: this bounds the expansion.
			if bound := len(out) + len(tmpl) + dollars*(m[1]-m[0]); bound > v.gen.maxString {
				v.produce(L, "re:replace", bound)
			}
			out = re.ExpandString(out, tmpl, text, m)
		}
		if len(out) > v.gen.maxString {
			v.produce(L, "re:replace", len(out))
		}
		last = m[1]
	}
	out = append(out, text[last:]...)
	v.produce(L, "re:replace", len(out))
	L.Push(lua.LString(out))
	return 1
}
