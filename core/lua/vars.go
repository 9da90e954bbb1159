package lua

import (
	"errors"
	"fmt"
	"path"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Script vars schemas. A script declares the section of hooks.vars it reads, with the
// type and default of each key, by calling tim.vars(section, schema) at load:
//
//	local cfg = tim.vars("moderation", {
//	  action     = {type = "string", default = "mask", one_of = {"mask", "reject"}},
//	  rate_limit = {type = "number", default = 20},
//	})
//
// The section is checked then (a wrong type, an undeclared key or a missing required
// key fails the load, naming the script and the key), and again by Reload before it
// changes anything: a configuration whose vars do not fit the schema of a loaded script
// is refused as a whole.

// varTypes are the types a schema may name.
var varTypes = map[string]func(any) bool{
	"string":  func(v any) bool { _, ok := v.(string); return ok },
	"number":  isNumber,
	"integer": isInteger,
	"boolean": func(v any) bool { _, ok := v.(bool); return ok },
	"list":    func(v any) bool { _, ok := v.([]any); return ok },
	"strings": isStrings,
	"map":     func(v any) bool { _, ok := asMap(v); return ok },
	"any":     func(any) bool { return true },
}

// varField is one declared key.
type varField struct {
	typ      string
	def      any // nil: none
	required bool
	oneOf    []string
}

// varSchema is what a script declared with tim.vars.
type varSchema struct {
	script  string
	section string
	fields  map[string]varField
}

// check validates vars (all of hooks.vars) against s, and returns the section with
// the defaults filled in.
func (s *varSchema) check(vars map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(s.fields))
	raw, present := vars[s.section]
	sec, ok := asMap(raw)
	if present && raw != nil && !ok {
		return nil, fmt.Errorf("hooks.vars.%s: %s wants a map, got %s", s.section, s.script, describe(raw))
	}
	var errs []error
	for _, k := range sortedKeys(sec) {
		f, declared := s.fields[k]
		if !declared {
			errs = append(errs, fmt.Errorf("hooks.vars.%s.%s: not a key %s reads (it reads %s)", s.section, k, s.script, strings.Join(sortedKeys(s.fields), ", ")))
			continue
		}
		val := sec[k]
		if err := f.valid(val); err != nil {
			errs = append(errs, fmt.Errorf("hooks.vars.%s.%s: %s wants %s", s.section, k, s.script, err))
			continue
		}
		out[k] = val
	}
	for k, f := range s.fields {
		if _, ok := out[k]; ok {
			continue
		}
		if _, given := sec[k]; given {
			continue // invalid, reported above
		}
		if f.required {
			errs = append(errs, fmt.Errorf("hooks.vars.%s.%s: required by %s (%s)", s.section, k, s.script, f.typ))
		} else if f.def != nil {
			out[k] = f.def
		}
	}
	return out, errors.Join(errs...)
}

// valid reports what was wanted when val does not fit f.
func (f varField) valid(val any) error {
	if m, ok := asMap(val); ok && len(m) == 0 && (f.typ == "list" || f.typ == "strings") {
		return nil // {} in Lua, an empty list
	}
	if !varTypes[f.typ](val) {
		return fmt.Errorf("%s %s, got %s", article(f.typ), f.typ, describe(val))
	}
	if len(f.oneOf) > 0 {
		for _, o := range f.oneOf {
			if val == o {
				return nil
			}
		}
		return fmt.Errorf("one of %s, got %q", strings.Join(f.oneOf, ", "), val)
	}
	return nil
}

// tim.vars(section, schema) → the section of hooks.vars with defaults filled in; a
// value that does not fit the schema is a Lua error naming the key. The schema is
// remembered for Reload's check.
func (v *vm) timVars(L *lua.LState) int {
	section := L.CheckString(1)
	spec := L.CheckTable(2)
	name := "this script"
	if v.cur != nil {
		name = v.cur.name
	}
	s := &varSchema{script: name, section: section, fields: map[string]varField{}}
	spec.ForEach(func(k, val lua.LValue) {
		key, ok := k.(lua.LString)
		if !ok {
			L.ArgError(2, "schema keys must be strings")
		}
		f, err := parseField(val)
		if err != nil {
			L.ArgError(2, fmt.Sprintf("%s: %v", key, err))
		}
		s.fields[string(key)] = f
	})
	out, err := s.check(v.gen.vars)
	if err != nil {
		L.RaiseError("%v", err)
	}
	if v.declared != nil {
		v.declared = append(v.declared, s)
	}
	L.Push(toLua(L, out))
	return 1
}

// parseField reads a schema entry: a type name, or {type=, default=, required=, one_of=}.
func parseField(val lua.LValue) (varField, error) {
	var f varField
	switch x := val.(type) {
	case lua.LString:
		f.typ = string(x)
	case *lua.LTable:
		f.typ = lua.LVAsString(x.RawGetString("type"))
		f.required = lua.LVAsBool(x.RawGetString("required"))
		if d := x.RawGetString("default"); d != lua.LNil {
			def, err := toGo(d, 0)
			if err != nil {
				return f, fmt.Errorf("default: %w", err)
			}
			f.def = def
		}
		if o := x.RawGetString("one_of"); o != lua.LNil {
			list, err := stringList(o)
			if err != nil {
				return f, fmt.Errorf("one_of: %w", err)
			}
			f.oneOf = list
		}
	default:
		return f, fmt.Errorf("want a type name or a table, got a %s", val.Type())
	}
	if varTypes[f.typ] == nil {
		return f, fmt.Errorf("unknown type %q (string, number, integer, boolean, list, strings, map, any)", f.typ)
	}
	if f.def != nil {
		if err := f.valid(f.def); err != nil {
			return f, fmt.Errorf("default: want %v", err)
		}
	}
	return f, nil
}

// checkVars checks vars against the schemas of the loaded scripts that patterns
// select, before a reload changes anything.
func (r *Runtime) checkVars(patterns []string, vars map[string]any) error {
	var errs []error
	for _, name := range sortedKeys(r.scripts) {
		st := r.scripts[name]
		if st.active == nil || !selected(name, patterns) {
			continue
		}
		for _, s := range st.schemas {
			if _, err := s.check(vars); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// selected reports whether a script file is named by one of the patterns.
func selected(name string, patterns []string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[fmt.Sprint(k)] = x
		}
		return out, true
	}
	return nil, false
}

func isNumber(v any) bool {
	switch v.(type) {
	case int, int64, uint64, float64:
		return true
	}
	return false
}

func isInteger(v any) bool {
	if f, ok := v.(float64); ok {
		return f == float64(int64(f))
	}
	return isNumber(v)
}

func isStrings(v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, x := range list {
		if _, ok := x.(string); !ok {
			return false
		}
	}
	return true
}

// describe names the type of a configuration value for errors.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("a string (%q)", x)
	case bool:
		return fmt.Sprintf("a boolean (%v)", x)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a map"
	}
	if isNumber(v) {
		return fmt.Sprintf("a number (%v)", v)
	}
	return fmt.Sprintf("a %T", v)
}

func article(typ string) string {
	if typ == "integer" || typ == "any" {
		return "an"
	}
	if typ == "strings" {
		return "a list of"
	}
	return "a"
}
