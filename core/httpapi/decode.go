package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

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
		return nil, badBody("expected a JSON object (a chat message), got %s", packet.JSONKind(body))
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
			return nil, badBody("field \"extras\": expected a JSON object, got %s", packet.JSONKind(e))
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

// describeJSONError turns a decoding error of a chat-shaped body into a 10020 answer
// that names the byte offset or the field at fault (packet.DescribeDecodeError).
func describeJSONError(body []byte, err error) *apiError {
	return badBody("%s", packet.DescribeDecodeError(body, &packet.Chat{}, err))
}
