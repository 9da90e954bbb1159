package packet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// DescribeDecodeError says why body did not decode into v (a pointer to a struct), given
// the decoder's error err (from Unmarshal or encoding/json), in words for the client that
// sent it: the byte offset or the JSON field at fault and what was expected there. It
// never names a Go type.
func DescribeDecodeError(body []byte, v any, err error) string {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return "empty body: expected a JSON object"
	}
	if trimmed[0] != '{' {
		return "expected a JSON object, got " + JSONKind(trimmed)
	}
	if !isStdJSONError(err) {
		// Unmarshal's (sonic's) errors name Go types: take encoding/json's account.
		if err = json.Unmarshal(body, fresh(v)); err == nil {
			return "invalid JSON body"
		}
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &syn) && syn.Offset >= int64(len(body)) && strings.Contains(syn.Error(), "unexpected end"):
		return fmt.Sprintf("invalid JSON: unexpected end of body at byte %d", len(body))
	case errors.As(err, &syn):
		// Offset counts the bytes read, the bad one included.
		at := max(syn.Offset-1, 0)
		line, col := position(body, at)
		return fmt.Sprintf("invalid JSON at byte %d (line %d, column %d): %s",
			at, line, col, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("field %q: expected %s, got JSON %s", typ.Field, typeName(typ.Type.Kind()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	// An error from a field's own decoder (Int, Str) does not say which field it was:
	// find it by decoding the members one at a time.
	if field := failingField(body, v); field != "" {
		return fmt.Sprintf("field %q: %v", field, err)
	}
	return "invalid JSON body"
}

// isStdJSONError reports whether err comes from encoding/json's own checks (and so
// carries an offset or a field), rather than from sonic or a field's decoder.
func isStdJSONError(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.HasPrefix(err.Error(), "json: unknown field ")
}

// fresh returns a new zero value of the type v points to, as a pointer.
func fresh(v any) any {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return new(map[string]any)
	}
	return reflect.New(t.Elem()).Interface()
}

// failingField returns the first member of the JSON object body (in key order) that v's
// type cannot decode on its own, or "".
func failingField(body []byte, v any) string {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return ""
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		one, err := json.Marshal(map[string]json.RawMessage{k: members[k]})
		if err != nil {
			continue
		}
		if json.Unmarshal(one, fresh(v)) != nil {
			return k
		}
	}
	return ""
}

// position converts a 0-based byte offset of body to a 1-based line and column.
func position(body []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(body)))
	before := body[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// JSONKind names the kind of JSON value that b starts with ("an array", "a string", ...).
func JSONKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch c := b[0]; {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case c == '{':
		return "an object"
	}
	return fmt.Sprintf("invalid JSON (starts with %q)", b[:1])
}

// typeName translates a Go kind into the JSON type a client expects to read.
func typeName(kind reflect.Kind) string {
	switch kind {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value"
}
