package lua

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"

	lua "github.com/yuin/gopher-lua"
)

// maxDepth bounds the nesting converted between Lua and Go (and catches cycles).
const maxDepth = 64

var errTooDeep = errors.New("value nested too deep (or cyclic)")

// toGo converts a Lua value to JSON-like Go: nil, bool, float64, string, []any,
// map[string]any. A table whose keys are exactly 1..n is a list; an empty table is an
// empty map. Functions and userdata are errors.
func toGo(v lua.LValue, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %v has no JSON form", f)
		}
		return f, nil
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		return tableToGo(v, depth)
	}
	return nil, fmt.Errorf("a %s has no JSON form", v.Type())
}

func tableToGo(t *lua.LTable, depth int) (any, error) {
	n := t.MaxN()
	keys := 0
	var err error
	t.ForEach(func(lua.LValue, lua.LValue) { keys++ })
	if n > 0 && n == keys {
		list := make([]any, n)
		for i := 1; i <= n && err == nil; i++ {
			list[i-1], err = toGo(t.RawGetInt(i), depth+1)
		}
		return list, err
	}
	obj := make(map[string]any, keys)
	t.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		var key string
		switch k := k.(type) {
		case lua.LString:
			key = string(k)
		case lua.LNumber:
			key = k.String()
		default:
			err = fmt.Errorf("a %s key has no JSON form", k.Type())
			return
		}
		obj[key], err = toGo(v, depth+1)
	})
	return obj, err
}

// smallInts are boxed Lua numbers 0..1023: pushing a counter value from them does
// not allocate.
var smallInts = func() (t [1024]lua.LValue) {
	for i := range t {
		t[i] = lua.LNumber(i)
	}
	return t
}()

// number returns n as a Lua value, without allocating for small integers.
func number(n int64) lua.LValue {
	if n >= 0 && n < int64(len(smallInts)) {
		return smallInts[n]
	}
	return lua.LNumber(n)
}

// toLua converts JSON-like Go values (and the common Go slices and maps) to Lua.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case json.Number:
		f, _ := v.Float64()
		return lua.LNumber(f)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case []string:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(lua.LString(e))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case map[any]any: // YAML maps with non-string keys
		t := L.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetString(fmt.Sprint(k), toLua(L, e))
		}
		return t
	}
	return lua.LString(fmt.Sprint(v))
}

// jsonEncode encodes a Lua value as JSON; maps have sorted keys, so equal values give
// equal bytes.
func jsonEncode(v lua.LValue) ([]byte, error) {
	g, err := toGo(v, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(g)
}

// jsonEncodeMax is jsonEncode refusing, before encoding, values whose JSON would
// clearly be longer than limit bytes (the same string referenced many times, say).
func jsonEncodeMax(v lua.LValue, limit int) ([]byte, error) {
	g, err := toGo(v, 0)
	if err != nil {
		return nil, err
	}
	if n := jsonSize(g, limit); n > limit {
		return nil, fmt.Errorf("the JSON text would exceed hooks.max_string_bytes (%d)", limit)
	}
	return json.Marshal(g)
}

// jsonSize is a lower bound of the JSON length of g, counted until it exceeds limit.
func jsonSize(g any, limit int) int {
	switch g := g.(type) {
	case string:
		return len(g) + 2
	case []any:
		n := 2
		for _, x := range g {
			if n += jsonSize(x, limit) + 1; n > limit {
				break
			}
		}
		return n
	case map[string]any:
		n := 2
		for k, x := range g {
			if n += len(k) + 4 + jsonSize(x, limit); n > limit {
				break
			}
		}
		return n
	}
	return 4
}

// jsonDecode decodes JSON into a Lua value.
func jsonDecode(L *lua.LState, data []byte) (lua.LValue, error) {
	var g any
	if err := json.Unmarshal(data, &g); err != nil {
		return lua.LNil, err
	}
	return toLua(L, g), nil
}

// canonicalJSON re-encodes JSON with sorted keys (nil for empty or invalid input), to
// compare extras before and after a script.
func canonicalJSON(data []byte) []byte {
	if len(data) == 0 {
		return nil
	}
	var g any
	if json.Unmarshal(data, &g) != nil {
		return nil
	}
	out, _ := json.Marshal(g)
	return out
}

// stringList reads a Lua string or list of strings.
func stringList(v lua.LValue) ([]string, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LString:
		if v == "" {
			return nil, nil
		}
		return []string{string(v)}, nil
	case lua.LNumber:
		return []string{v.String()}, nil
	case *lua.LTable:
		out := make([]string, 0, v.Len())
		var err error
		v.ForEach(func(_, e lua.LValue) {
			switch e := e.(type) {
			case lua.LString:
				if e != "" {
					out = append(out, string(e))
				}
			case lua.LNumber:
				out = append(out, e.String())
			default:
				err = fmt.Errorf("list holds a %s, want strings", e.Type())
			}
		})
		return out, err
	}
	return nil, fmt.Errorf("a %s is not a string or list of strings", v.Type())
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
