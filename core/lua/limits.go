package lua

import (
	"fmt"
	"strings"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// Memory limits. gopher-lua has no allocation hook, so memory is bounded where it is
// produced in bulk: every function that builds a string (string.rep, format, gsub,
// upper, lower, char, table.concat, the `..` operator, tim.json_encode, m:mask,
// re:replace) checks the size of its result before building it against
// hooks.max_string_bytes, and charges it to the running call, which may produce at most
// hooks.max_call_bytes of strings in all. Both failures are Lua errors naming the limit.
// Tables are bounded by the deadline only (scripts/README.md says so).

// Defaults of hooks.max_string_bytes and hooks.max_call_bytes when left at 0.
const (
	defaultMaxString = 1 << 20
	defaultMaxCall   = 16 << 20
)

// produce checks that a result of n bytes made by what fits hooks.max_string_bytes and
// what is left of the call's hooks.max_call_bytes, and charges it to the call.
func (v *vm) produce(L *lua.LState, what string, n int) {
	g := v.gen
	if n < 0 || n > g.maxString {
		L.RaiseError("%s: a result of %s exceeds hooks.max_string_bytes (%d)", what, bytesText(n), g.maxString)
	}
	v.spent += n
	if v.spent > g.maxCall {
		L.RaiseError("%s: this call built more than hooks.max_call_bytes (%d) of strings", what, g.maxCall)
	}
}

func bytesText(n int) string {
	if n < 0 {
		return "more than 2^63 bytes"
	}
	return fmt.Sprintf("%d bytes", n)
}

// capLibs replaces the string-building functions of the string and table libraries
// with bounded ones.
func (v *vm) capLibs() {
	L := v.L
	if str, ok := L.GetGlobal(lua.StringLibName).(*lua.LTable); ok {
		v.libFormat = gfunc(str, "format")
		str.RawSetString("dump", lua.LNil)
		for name, fn := range map[string]lua.LGFunction{
			"rep": v.strRep, "format": v.strFormat, "gsub": v.strGsub,
			"upper": v.strCase(strings.ToUpper, "string.upper"), "lower": v.strCase(strings.ToLower, "string.lower"),
			"char": v.strChar, "gmatch": v.strGmatch, "gfind": v.strGmatch,
			"find": v.strFind, "match": v.strMatch,
		} {
			str.RawSetString(name, L.NewFunction(fn))
		}
	}
	if tbl, ok := L.GetGlobal(lua.TabLibName).(*lua.LTable); ok {
		v.libConcat = gfunc(tbl, "concat")
		tbl.RawSetString("concat", L.NewFunction(v.tableConcat))
	}
}

// gfunc is the Go function of lib[name].
func gfunc(lib *lua.LTable, name string) lua.LGFunction {
	if f, ok := lib.RawGetString(name).(*lua.LFunction); ok && f.IsG {
		return f.GFunction
	}
	return func(L *lua.LState) int { L.RaiseError("%s is not available", name); return 0 }
}

// string.rep(s, n).
func (v *vm) strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	size := len(s) * n
	if size/n != len(s) {
		size = -1
	}
	v.produce(L, "string.rep", size)
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// string.upper and string.lower: the result is about as long as s.
func (v *vm) strCase(conv func(string) string, what string) lua.LGFunction {
	return func(L *lua.LState) int {
		s := L.CheckString(1)
		v.produce(L, what, len(s))
		L.Push(lua.LString(conv(s)))
		return 1
	}
}

// string.char(...).
func (v *vm) strChar(L *lua.LState) int {
	n := L.GetTop()
	v.produce(L, "string.char", n)
	b := make([]byte, n)
	for i := 1; i <= n; i++ {
		c := L.CheckInt(i)
		if c < 0 || c > 255 {
			L.ArgError(i, "value out of range")
		}
		b[i-1] = byte(c)
	}
	L.Push(lua.LString(b))
	return 1
}

// string.format(fmt, ...). Widths and precisions have at most two digits (as in Lua
// 5.1); the result is bounded by the format's length, the arguments' and 128 bytes
// per conversion.
func (v *vm) strFormat(L *lua.LState) int {
	f := L.CheckString(1)
	size, quoted := len(f), false
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
			i++
		}
		digits := 0
		for i < len(f) && (f[i] >= '0' && f[i] <= '9' || f[i] == '.') {
			if f[i] == '.' {
				digits = 0
			} else if digits++; digits > 2 {
				L.RaiseError("string.format: invalid format (width or precision too long)")
			}
			i++
		}
		if i < len(f) && f[i] == 'q' {
			quoted = true
		}
	}
	for i := 2; i <= L.GetTop(); i++ {
		size += 128
		if s, ok := L.Get(i).(lua.LString); ok {
			size += len(s)
			if quoted {
				size += len(s)
			}
		}
	}
	v.produce(L, "string.format", size)
	return v.libFormat(L)
}

// table.concat(t [, sep [, i [, j]]]).
func (v *vm) tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i, j := L.OptInt(3, 1), L.OptInt(4, t.Len())
	size := 0
	for k := i; k <= j; k++ {
		x := t.RawGetInt(k)
		n, ok := strLen(x)
		if !ok {
			L.RaiseError("table.concat: invalid value (%s) at index %d in table for concat", x.Type(), k)
		}
		size += n
		if k < j {
			size += len(sep)
		}
	}
	if i <= j {
		v.produce(L, "table.concat", size)
	}
	return v.libConcat(L)
}

// concatName is the global each script's `..` operators call (see rewriteConcat); it
// is not a Lua name, so no script can shadow it by accident.
const concatName = "(concat)"

// concat is the `..` operator of scripts: a .. b .. c is concat(a, b, c). Strings and
// numbers are joined after the size check; anything else goes through gopher-lua (the
// __concat metamethod, or its error).
func (v *vm) concat(L *lua.LState) int {
	n := L.GetTop()
	size := 0
	for i := 1; i <= n; i++ {
		k, ok := strLen(L.Get(i))
		size += k
		if !ok {
			args := make([]lua.LValue, n)
			for k := range args {
				args[k] = L.Get(k + 1)
			}
			s := L.Concat(args...)
			v.produce(L, "..", len(s))
			L.Push(lua.LString(s))
			return 1
		}
	}
	v.produce(L, "..", size)
	var b strings.Builder
	b.Grow(size)
	for i := 1; i <= n; i++ {
		b.WriteString(lua.LVAsString(L.Get(i)))
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// strLen is the length of a string or number as a string; ok is false for other values.
func strLen(v lua.LValue) (n int, ok bool) {
	switch x := v.(type) {
	case lua.LString:
		return len(x), true
	case lua.LNumber:
		return len(x.String()), true
	}
	return 0, false
}

// string.gsub(s, pattern, repl [, n]), linear in the result (gopher-lua's copies the
// whole string once per match), bounded while the result grows, one match at a time
// (pattern.go).
func (v *vm) strGsub(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	L.CheckTypes(3, lua.LTString, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	maxN := L.OptInt(4, len(src)+1)
	m := v.newMatcher(L, src, pat)
	p, anchor := 0, strings.HasPrefix(pat, "^")
	if anchor {
		p = 1
	}
	var b strings.Builder
	grow := func(add string) {
		if b.Len()+len(add) > v.gen.maxString {
			v.produce(L, "string.gsub", b.Len()+len(add))
		}
		b.WriteString(add)
	}
	n, s := 0, 0
	for n < maxN {
		m.level = 0
		e := m.match(s, p)
		if e != -1 {
			n++
			grow(v.gsubValue(m, repl, s, e))
		}
		if e != -1 && e > s {
			s = e
		} else if s < len(src) {
			grow(src[s : s+1])
			s++
		} else {
			break
		}
		if anchor {
			break
		}
	}
	if s < len(src) {
		grow(src[s:])
	}
	v.produce(L, "string.gsub", b.Len())
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// gsubValue is the replacement of the match src[s:e] of m.
func (v *vm) gsubValue(m *matcher, repl lua.LValue, s, e int) string {
	L := m.L
	var out lua.LValue
	switch r := repl.(type) {
	case lua.LString:
		return expandGsub(m, string(r), s, e)
	case *lua.LTable:
		out = L.GetTable(r, m.captureValue(0, s, e))
	case *lua.LFunction:
		L.Push(r)
		L.Call(m.pushCaptures(s, e, true), 1)
		out = L.Get(-1)
		L.Pop(1)
	}
	switch o := out.(type) {
	case lua.LString, lua.LNumber:
		return lua.LVAsString(o)
	case *lua.LNilType:
	case lua.LBool:
		if o {
			L.RaiseError("string.gsub: invalid replacement value (a boolean)")
		}
	default:
		L.RaiseError("string.gsub: invalid replacement value (a %s)", out.Type())
	}
	return m.src[s:e]
}

// expandGsub expands a gsub replacement string: %0 the match, %1-%9 captures, %x x.
func expandGsub(m *matcher, repl string, s, e int) string {
	if strings.IndexByte(repl, '%') < 0 {
		return repl
	}
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '%' || i+1 == len(repl) {
			b.WriteByte(c)
			continue
		}
		i++
		switch d := repl[i]; {
		case d == '0':
			b.WriteString(m.src[s:e])
		case d >= '1' && d <= '9':
			b.WriteString(lua.LVAsString(m.captureValue(int(d-'1'), s, e)))
		default:
			b.WriteByte(d)
		}
	}
	return b.String()
}

// maskSize bounds the result of m:mask(text, mask).
func maskSize(text, mask string) int {
	if len(mask) <= 1 {
		return len(text)
	}
	return len(text) + utf8.RuneCountInString(text)*(len(mask)-1)
}
