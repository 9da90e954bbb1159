package lua

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Lua patterns. gopher-lua's matcher runs a whole string.find, match, gmatch or gsub
// as one Go call that nothing can interrupt, and backtracking makes some patterns
// polynomial: string.find(string.rep("a", 300), ".-.-.-.-b") ran for minutes past any
// deadline, and gmatch and gsub found every match before the first was used. This is a
// backtracking matcher with Lua 5.1's semantics that checks the deadline every
// patternCheck steps, and whose gmatch and gsub find one match at a time.

const (
	maxCaptures    = 32   // as Lua's LUA_MAXCAPTURES
	maxMatchDepth  = 200  // nested pattern items: "pattern too complex" beyond
	patternCheck   = 1024 // steps between two looks at the deadline
	capUnfinished  = -1
	capPosition    = -2
	patternSpecial = "^$*+?.([%-"
)

// matcher is the state of one match of pat against src.
type matcher struct {
	v        *vm
	L        *lua.LState
	src, pat string
	level    int
	capture  [maxCaptures]struct{ start, len int }
	depth    int
	steps    int
}

// tick counts a step and stops the script when its deadline passed.
func (m *matcher) tick() {
	m.steps++
	if m.steps%patternCheck == 0 && m.v.stop.Load() {
		m.L.RaiseError("pattern matching stopped by the deadline")
	}
}

// match matches pat[p:] at src[s:] and returns the end of the match, or -1.
func (m *matcher) match(s, p int) int {
	m.depth++
	if m.depth > maxMatchDepth {
		m.L.RaiseError("pattern too complex")
	}
	r := m.matchItems(s, p)
	m.depth--
	return r
}

func (m *matcher) matchItems(s, p int) int {
	src, pat := m.src, m.pat
	for {
		m.tick()
		if p == len(pat) {
			return s
		}
		switch c := pat[p]; {
		case c == '(':
			if p+1 < len(pat) && pat[p+1] == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case c == ')':
			return m.endCapture(s, p+1)
		case c == '$' && p+1 == len(pat):
			if s == len(src) {
				return s
			}
			return -1
		case c == '%' && p+1 < len(pat) && pat[p+1] == 'b':
			if s = m.matchBalance(s, p+2); s == -1 {
				return -1
			}
			p += 4
			continue
		case c == '%' && p+1 < len(pat) && pat[p+1] == 'f':
			p += 2
			if p >= len(pat) || pat[p] != '[' {
				m.L.RaiseError("missing '[' after '%%f' in pattern")
			}
			ep := m.classEnd(p)
			var prev, cur byte
			if s > 0 {
				prev = src[s-1]
			}
			if s < len(src) {
				cur = src[s]
			}
			if m.matchBracketClass(prev, p, ep-1) || !m.matchBracketClass(cur, p, ep-1) {
				return -1
			}
			p = ep
			continue
		case c == '%' && p+1 < len(pat) && isDigit(pat[p+1]):
			if s = m.matchCapture(s, pat[p+1]); s == -1 {
				return -1
			}
			p += 2
			continue
		}
		ep := m.classEnd(p)
		ok := s < len(src) && m.singleMatch(src[s], p, ep)
		if ep < len(pat) {
			switch pat[ep] {
			case '?':
				if ok {
					if r := m.match(s+1, ep+1); r != -1 {
						return r
					}
				}
				p = ep + 1
				continue
			case '*':
				return m.maxExpand(s, p, ep)
			case '+':
				if !ok {
					return -1
				}
				return m.maxExpand(s+1, p, ep)
			case '-':
				return m.minExpand(s, p, ep)
			}
		}
		if !ok {
			return -1
		}
		s, p = s+1, ep
	}
}

// classEnd returns the end of the single-character class at pat[p].
func (m *matcher) classEnd(p int) int {
	pat := m.pat
	c := pat[p]
	p++
	switch c {
	case '%':
		if p >= len(pat) {
			m.L.RaiseError("malformed pattern (ends with '%%')")
		}
		return p + 1
	case '[':
		if p < len(pat) && pat[p] == '^' {
			p++
		}
		for first := true; first || p < len(pat) && pat[p] != ']'; first = false {
			if p >= len(pat) {
				break
			}
			c := pat[p]
			p++
			if c == '%' && p < len(pat) {
				p++
			}
		}
		if p >= len(pat) {
			m.L.RaiseError("malformed pattern (missing ']')")
		}
		return p + 1
	}
	return p
}

// singleMatch reports whether c matches the class pat[p:ep].
func (m *matcher) singleMatch(c byte, p, ep int) bool {
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return matchClass(c, m.pat[p+1])
	case '[':
		return m.matchBracketClass(c, p, ep-1)
	}
	return m.pat[p] == c
}

// matchBracketClass reports whether c is in the set pat[p:ec+1] ("[...]").
func (m *matcher) matchBracketClass(c byte, p, ec int) bool {
	pat := m.pat
	sig := true
	if pat[p+1] == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case pat[p] == '%':
			p++
			if matchClass(c, pat[p]) {
				return sig
			}
		case pat[p+1] == '-' && p+2 < ec:
			p += 2
			if pat[p-2] <= c && c <= pat[p] {
				return sig
			}
		case pat[p] == c:
			return sig
		}
	}
	return !sig
}

// matchClass reports whether c is in the class %cl (%a, %d, ...; upper case negates).
func matchClass(c, cl byte) bool {
	var res bool
	switch cl | 0x20 {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 32 || c == 127
	case 'd':
		res = isDigit(c)
	case 'l':
		res = 'a' <= c && c <= 'z'
	case 'p':
		res = c > 32 && c < 127 && !isAlpha(c) && !isDigit(c)
	case 's':
		res = c == ' ' || '\t' <= c && c <= '\r'
	case 'u':
		res = 'A' <= c && c <= 'Z'
	case 'w':
		res = isAlpha(c) || isDigit(c)
	case 'x':
		res = isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f'
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if 'A' <= cl && cl <= 'Z' {
		return !res
	}
	return res
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for s+i < len(m.src) && m.singleMatch(m.src[s+i], p, ep) {
		m.tick()
		i++
	}
	for ; i >= 0; i-- {
		if r := m.match(s+i, ep+1); r != -1 {
			return r
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if r := m.match(s, ep+1); r != -1 {
			return r
		}
		if s >= len(m.src) || !m.singleMatch(m.src[s], p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.L.RaiseError("too many captures")
	}
	m.capture[m.level].start, m.capture[m.level].len = s, what
	m.level++
	r := m.match(s, p)
	if r == -1 {
		m.level--
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capture[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		m.L.RaiseError("invalid pattern capture")
	}
	m.capture[l].len = s - m.capture[l].start
	r := m.match(s, p)
	if r == -1 {
		m.capture[l].len = capUnfinished
	}
	return r
}

// matchBalance matches %bxy at src[s]; p is the index of x.
func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.L.RaiseError("missing arguments to '%%b'")
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	b, e, open := m.pat[p], m.pat[p+1], 1
	for i := s + 1; i < len(m.src); i++ {
		m.tick()
		switch m.src[i] {
		case e:
			if open--; open == 0 {
				return i + 1
			}
		case b:
			open++
		}
	}
	return -1
}

// matchCapture matches a back reference %1-%9 at src[s].
func (m *matcher) matchCapture(s int, l byte) int {
	i := int(l - '1')
	if i < 0 || i >= m.level || m.capture[i].len == capUnfinished {
		m.L.RaiseError("invalid capture index %%%d", i+1)
	}
	c := m.capture[i]
	if c.len < 0 {
		return -1
	}
	text := m.src[c.start : c.start+c.len]
	if strings.HasPrefix(m.src[s:], text) {
		return s + len(text)
	}
	return -1
}

// captureValue is capture i of a match src[s:e] (i 0 is the whole match when the
// pattern has no capture).
func (m *matcher) captureValue(i, s, e int) lua.LValue {
	if i >= m.level {
		if i != 0 {
			m.L.RaiseError("invalid capture index %%%d", i+1)
		}
		return lua.LString(m.src[s:e])
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		m.L.RaiseError("unfinished capture")
	case capPosition:
		return lua.LNumber(c.start + 1)
	}
	return lua.LString(m.src[c.start : c.start+c.len])
}

// pushCaptures pushes the captures of a match src[s:e] (the whole match when there is
// none and whole is set) and returns their number.
func (m *matcher) pushCaptures(s, e int, whole bool) int {
	n := m.level
	if n == 0 && whole {
		n = 1
	}
	for i := 0; i < n; i++ {
		m.L.Push(m.captureValue(i, s, e))
	}
	return n
}

// newMatcher prepares a match of pat in src.
func (v *vm) newMatcher(L *lua.LState, src, pat string) *matcher {
	return &matcher{v: v, L: L, src: src, pat: pat}
}

// startIndex is Lua 5.1's start position of find and match: init (1-based, negative
// from the end) as a 0-based index clamped to [0, len].
func startIndex(init, n int) int {
	if init < 0 {
		init = n + init + 1
	}
	return min(max(init-1, 0), n)
}

// string.find(s, pattern [, init [, plain]]).
func (v *vm) strFind(L *lua.LState) int { return v.findAux(L, true) }

// string.match(s, pattern [, init]).
func (v *vm) strMatch(L *lua.LState) int { return v.findAux(L, false) }

func (v *vm) findAux(L *lua.LState, find bool) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	init := startIndex(L.OptInt(3, 1), len(src))
	if find && (lua.LVAsBool(L.Get(4)) || !strings.ContainsAny(pat, patternSpecial)) {
		i := strings.Index(src[init:], pat)
		if i < 0 {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LNumber(init + i + 1))
		L.Push(lua.LNumber(init + i + len(pat)))
		return 2
	}
	m := v.newMatcher(L, src, pat)
	p, anchor := 0, strings.HasPrefix(pat, "^")
	if anchor {
		p = 1
	}
	for s := init; ; s++ {
		m.level = 0
		if e := m.match(s, p); e != -1 {
			if find {
				L.Push(lua.LNumber(s + 1))
				L.Push(lua.LNumber(e))
				return 2 + m.pushCaptures(s, e, false)
			}
			return m.pushCaptures(s, e, true)
		}
		if s >= len(src) || anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

// string.gmatch(s, pattern): an iterator finding one match per call.
func (v *vm) strGmatch(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		m := v.newMatcher(L, src, pat)
		for s := pos; s <= len(src); s++ {
			m.level = 0
			if e := m.match(s, 0); e != -1 {
				pos = e
				if e == s {
					pos++ // an empty match: go on at the next position
				}
				return m.pushCaptures(s, e, true)
			}
		}
		pos = len(src) + 1
		return 0
	}))
	return 1
}
