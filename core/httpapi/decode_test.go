package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
)

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name string
		mode decodeMode
		body string
		code packet.Status // 0: no error
		msg  string
		want packet.Chat
	}{
		{name: "full", mode: modeV1,
			body: `{"id":"c1","from":"a","to":"b","cmd":11,"createTime":1700000000000,"msgType":1,"chatType":2,"content":"u","extras":{"x":[1]}}`,
			want: packet.Chat{ID: "c1", From: "a", To: "b", Cmd: 11, CreateTime: 1700000000000, MsgType: 1, ChatType: 2,
				Content: "u", Extras: json.RawMessage(`{"x":[1]}`)}},
		{name: "numeric strings and numeric ids", mode: modeV1,
			body: `{"from":1,"groupId":2,"cmd":"11","chatType":"1","msgType":"","content":"x"}`,
			want: packet.Chat{From: "1", GroupID: "2", Cmd: 11, ChatType: 1, Content: "x"}},
		{name: "null extras dropped", mode: modeV1, body: `{"to":"b","chatType":2,"extras":null}`,
			want: packet.Chat{To: "b", ChatType: 2, Cmd: 11}},
		{name: "whitespace around", mode: modeV1, body: " \n{\"to\":\"b\",\"chatType\":2}\n ",
			want: packet.Chat{To: "b", ChatType: 2, Cmd: 11}},
		{name: "J-IM ignores unknown fields", mode: modeJIM, body: `{"to":"b","command":"COMMAND_CHAT_REQ"}`,
			want: packet.Chat{To: "b", Cmd: 11}},
		{name: "J-IM leaves the receiver to the core", mode: modeJIM, body: `{"content":"x"}`,
			want: packet.Chat{Content: "x", Cmd: 11}},
		{name: "v1 unknown field", mode: modeV1, body: `{"to":"b","chatType":2,"command":"x"}`,
			code: packet.StatusInvalidBody, msg: `unknown field "command"`},
		{name: "empty", mode: modeJIM, body: "  ", code: packet.StatusInvalidBody, msg: "empty body"},
		{name: "string", mode: modeJIM, body: `"hi"`, code: packet.StatusInvalidBody, msg: "got a string"},
		{name: "null", mode: modeJIM, body: `null`, code: packet.StatusInvalidBody, msg: "got null"},
		{name: "number", mode: modeJIM, body: `12`, code: packet.StatusInvalidBody, msg: "got a number"},
		{name: "garbage", mode: modeJIM, body: `<xml/>`, code: packet.StatusInvalidBody, msg: `invalid JSON (starts with "<")`},
		{name: "syntax error position", mode: modeJIM, body: "{\n\"to\": \"b\",\n\"x\" 1}",
			code: packet.StatusInvalidBody, msg: "invalid JSON at byte 17 (line 3, column 5)"},
		{name: "truncated", mode: modeJIM, body: `{"to":"b"`, code: packet.StatusInvalidBody, msg: "unexpected end of body at byte 9"},
		{name: "trailing object", mode: modeJIM, body: `{"to":"b"}{"to":"c"}`, code: packet.StatusInvalidBody,
			msg: "unexpected data after the JSON object at byte 10"},
		{name: "trailing garbage", mode: modeJIM, body: `{"to":"b"} x`, code: packet.StatusInvalidBody, msg: "unexpected data"},
		{name: "int field given a float", mode: modeJIM, body: `{"msgType":1.5}`, code: packet.StatusInvalidBody,
			msg: `field "msgType": not an integer`},
		{name: "int field given an object", mode: modeJIM, body: `{"to":"b","chatType":{}}`, code: packet.StatusInvalidBody,
			msg: `field "chatType"`},
		{name: "id given a bool", mode: modeJIM, body: `{"to":true}`, code: packet.StatusInvalidBody, msg: `field "to"`},
		{name: "content given an array", mode: modeJIM, body: `{"content":["x"]}`, code: packet.StatusInvalidBody,
			msg: `field "content": expected a string, got JSON array`},
		{name: "extras a string", mode: modeJIM, body: `{"extras":"x"}`, code: packet.StatusInvalidBody,
			msg: `field "extras": expected a JSON object, got a string`},
		{name: "cmd not chat", mode: modeJIM, body: `{"cmd":13}`, code: packet.StatusInvalidBody, msg: `"cmd": must be 11`},
		{name: "v1 no chatType", mode: modeV1, body: `{"to":"b"}`, code: packet.StatusNoReceiver, msg: `"chatType"`},
		{name: "v1 chatType 3", mode: modeV1, body: `{"to":"b","chatType":3}`, code: packet.StatusNoReceiver, msg: "got 3"},
		{name: "v1 private no to", mode: modeV1, body: `{"groupId":"g","chatType":2}`, code: packet.StatusNoReceiver, msg: `"to"`},
		{name: "v1 group no groupId", mode: modeV1, body: `{"to":"b","chatType":"1"}`, code: packet.StatusNoReceiver, msg: `"groupId"`},
		{name: "invalid UTF-8 in from", mode: modeJIM, body: "{\"from\":\"\xd3\"}", code: packet.StatusInvalidUTF8,
			msg: "byte 0xd3 at offset 9"},
		{name: "invalid UTF-8 in content", mode: modeV1, body: "{\"to\":\"b\",\"chatType\":2,\"content\":\"h\xffi\"}",
			code: packet.StatusInvalidUTF8, msg: "not valid UTF-8"},
		{name: "truncated multi-byte rune", mode: modeV1, body: "{\"to\":\"b\",\"chatType\":2,\"content\":\"\xe4\xb8\"}",
			code: packet.StatusInvalidUTF8, msg: "0xe4"},
		{name: "valid multi-byte runes kept", mode: modeV1, body: `{"to":"b","chatType":2,"content":"世界 🎉"}`,
			want: packet.Chat{To: "b", ChatType: 2, Cmd: 11, Content: "世界 🎉"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chat, err := decodeMessage([]byte(tc.body), tc.mode)
			if tc.code != 0 {
				var e *apiError
				if !errors.As(err, &e) {
					t.Fatalf("err %v (%T), want an *apiError", err, err)
				}
				if e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
					t.Errorf("got %d %q, want %d containing %q", e.Code, e.Msg, tc.code, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(chat)
			want, _ := json.Marshal(tc.want)
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzDecodeMessage checks that decoding never panics, that every error is an
// *apiError with a 400-class code and a message, and that a decoded message is
// valid and survives an encode/decode round trip unchanged.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"from":"a","to":"b","chatType":2,"msgType":0,"content":"hi"}`,
		`{"from":1,"groupId":"2","chatType":"1","cmd":"11","content":"x","extras":{"a":[1,{"b":null}]}}`,
		`{"from":"a","to":"b","chatType":2,"createTime":"1700000000000","id":9}`,
		`{"to":"b","chatType":2,"extras":null}`,
		`{"msgType":1e3,"chatType":"2","to":"x"}`,
		`{"chatType":-0}`,
		`{"to":"b"} {}`,
		`[1,2]`,
		`{"content":"\ud800"}`,
		`{"a":`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mode := range []decodeMode{modeJIM, modeV1} {
			chat, err := decodeMessage(body, mode)
			if err != nil {
				var e *apiError
				if !errors.As(err, &e) {
					t.Fatalf("mode %d: error %v is a %T, not an *apiError", mode, err, err)
				}
				if httpStatus(e.Code) != 400 || e.Msg == "" {
					t.Fatalf("mode %d: error code %d (HTTP %d) msg %q", mode, e.Code, httpStatus(e.Code), e.Msg)
				}
				continue
			}
			if chat.Cmd != packet.Int(packet.CmdChatReq) {
				t.Fatalf("mode %d: cmd %d", mode, chat.Cmd)
			}
			if len(chat.Extras) > 0 && bytes.TrimSpace(chat.Extras)[0] != '{' {
				t.Fatalf("mode %d: extras %q is not an object", mode, chat.Extras)
			}
			if mode == modeV1 && checkReceiver(chat) != nil {
				t.Fatalf("mode %d: accepted a chat without a receiver: %+v", mode, chat)
			}
			// Round trip: what the core would re-encode decodes to the same message.
			enc, err := json.Marshal(chat)
			if err != nil {
				t.Fatalf("mode %d: marshal: %v", mode, err)
			}
			again, err := decodeMessage(enc, mode)
			if err != nil {
				t.Fatalf("mode %d: re-decoding %s: %v", mode, enc, err)
			}
			enc2, _ := json.Marshal(again)
			if !bytes.Equal(enc, enc2) {
				t.Fatalf("mode %d: round trip changed the message:\n%s\n%s", mode, enc, enc2)
			}
		}
	})
}
