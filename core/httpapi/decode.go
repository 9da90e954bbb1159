package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/timgw/timgw/core/packet"
)

// apiError is a request the API refuses: a t-im status code and a precise message.
// The HTTP status follows from the code (httpStatus).
type apiError struct {
	Code packet.Status
	Msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Msg) }

func badBody(format string, args ...any) *apiError {
	return &apiError{Code: packet.StatusInvalidBody, Msg: fmt.Sprintf(format, args...)}
}

func noReceiver(format string, args ...any) *apiError {
	return &apiError{Code: packet.StatusNoReceiver, Msg: fmt.Sprintf(format, args...)}
}

// decodeMode says how strictly a chat body is read.
type decodeMode int

const (
	// modeJIM reads a body of J-IM's /api/message/send: unknown fields are ignored and
	// the receiver is left to the core to check, as J-IM did.
	modeJIM decodeMode = iota
	// modeV1 reads a body of /api/v1/messages: unknown fields are errors, and chatType,
	// to and groupId must name a receiver.
	modeV1
)

// decodeMessage reads the JSON body of a send request: a chat message as in
// docs/protocol.md section 2, with the sender in "from". Numbers are accepted as numeric
// strings and ids as numbers (packet.Chat decodes leniently). It returns an *apiError
// with code 10036 for a body that is not valid UTF-8 (encoding/json would replace the
// bad bytes), 10020 for a body that is not a well-formed chat object, and in modeV1 code
// 10024 when it names no receiver. The returned chat has Cmd 11; From is whatever the
// body said (possibly empty: the caller decides who sends).
func decodeMessage(body []byte, mode decodeMode) (*packet.Chat, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badBody("empty body: expected a JSON object (a chat message)")
	}
	if e := checkUTF8(body); e != nil {
		return nil, e
	}
	if body[0] != '{' {
		return nil, badBody("expected a JSON object (a chat message), got %s", jsonKind(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if mode == modeV1 {
		dec.DisallowUnknownFields()
	}
	var chat packet.Chat
	if err := dec.Decode(&chat); err != nil {
		return nil, describeJSONError(body, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badBody("unexpected data after the JSON object at byte %d", end)
	}
	if len(chat.Extras) > 0 {
		switch e := bytes.TrimSpace(chat.Extras); {
		case len(e) == 0 || bytes.Equal(e, []byte("null")):
			chat.Extras = nil
		case e[0] != '{':
			return nil, badBody("field \"extras\": expected a JSON object, got %s", jsonKind(e))
		}
	}
	if chat.Cmd != 0 && chat.Cmd != packet.Int(packet.CmdChatReq) {
		return nil, badBody("field \"cmd\": must be 11 (chat) when given, got %d", int64(chat.Cmd))
	}
	chat.Cmd = packet.Int(packet.CmdChatReq)
	if mode == modeV1 {
		if err := checkReceiver(&chat); err != nil {
			return nil, err
		}
	}
	return &chat, nil
}

// checkUTF8 refuses a body that is not valid UTF-8 (code 10036).
func checkUTF8(body []byte) *apiError {
	if err := packet.CheckUTF8(body); err != nil {
		return &apiError{Code: packet.StatusInvalidUTF8, Msg: fmt.Sprintf("request body is %v", err)}
	}
	return nil
}

// checkReceiver verifies that a chat names its receiver the way its chatType says.
func checkReceiver(chat *packet.Chat) *apiError {
	switch chat.ChatType {
	case packet.ChatTypeGroup:
		if chat.GroupID == "" {
			return noReceiver("field \"groupId\": required when chatType is 1 (group)")
		}
	case packet.ChatTypePrivate:
		if chat.To == "" {
			return noReceiver("field \"to\": required when chatType is 2 (private)")
		}
	default:
		return noReceiver("field \"chatType\": must be 1 (group) or 2 (private), got %d", int64(chat.ChatType))
	}
	return nil
}

// describeJSONError turns a decoding error into a message that names the byte offset
// or the field at fault.
func describeJSONError(body []byte, err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, the bad one included.
		at := max(syn.Offset-1, 0)
		line, col := position(body, at)
		return badBody("invalid JSON at byte %d (line %d, column %d): %s",
			at, line, col, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badBody("invalid JSON: unexpected end of body at byte %d", len(body))
	case errors.As(err, &typ) && typ.Field != "":
		return badBody("field %q: expected %s, got JSON %s", typ.Field, typeName(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badBody("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	// An error from a field's own decoder (packet.Int, packet.Str) does not say which
	// field it was: find it by decoding the members one at a time.
	if field := failingField(body); field != "" {
		return badBody("field %q: %v", field, err)
	}
	return badBody("invalid chat message: %v", err)
}

// chatFields are the JSON names of packet.Chat's members, lower-cased (encoding/json
// matches names case-insensitively).
var chatFields = map[string]bool{
	"id": true, "from": true, "to": true, "cmd": true, "createtime": true, "msgtype": true,
	"chattype": true, "groupid": true, "content": true, "extras": true, "seq": true, "recalled": true,
}

// failingField returns the first member of the JSON object body (in key order) that
// packet.Chat cannot decode on its own, or "".
func failingField(body []byte) string {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return ""
	}
	keys := make([]string, 0, len(chatFields))
	for k := range members {
		if chatFields[strings.ToLower(k)] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		one, err := json.Marshal(map[string]json.RawMessage{k: members[k]})
		if err != nil {
			continue
		}
		var c packet.Chat
		if json.Unmarshal(one, &c) != nil {
			return k
		}
	}
	return ""
}

// position converts a 0-based byte offset of body to a 1-based line and column.
func position(body []byte, offset int64) (line, col int) {
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
	if offset < 0 {
		offset = 0
	}
	before := body[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// jsonKind names the kind of JSON value that b starts with.
func jsonKind(b []byte) string {
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

// typeName translates a Go kind into the JSON type a user expects to read.
func typeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return kind
}
