package packet

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestChatLenientDecoding(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Chat
		wantErr string
	}{
		{"numbers", `{"cmd":11,"to":"bob","chatType":2,"msgType":0,"content":"hi","createTime":1700000000000}`,
			Chat{Cmd: 11, To: "bob", ChatType: 2, Content: "hi", CreateTime: 1700000000000}, ""},
		{"numeric strings (t-im demo page)", `{"cmd":"11","to":"bob","chatType":"2","msgType":"1","content":"hi"}`,
			Chat{Cmd: 11, To: "bob", ChatType: 2, MsgType: 1, Content: "hi"}, ""},
		{"empty string numbers", `{"cmd":11,"chatType":"","msgType":""}`, Chat{Cmd: 11}, ""},
		{"numeric ids", `{"cmd":11,"to":42,"groupId":7,"id":123456789012}`,
			Chat{Cmd: 11, To: "42", GroupID: "7", ID: "123456789012"}, ""},
		{"float that is an integer", `{"createTime":1.7e12}`, Chat{CreateTime: 1700000000000}, ""},
		{"null fields", `{"to":null,"chatType":null}`, Chat{}, ""},
		{"extras kept raw", `{"extras":{"a":1}}`, Chat{Extras: json.RawMessage(`{"a":1}`)}, ""},
		{"non-numeric string", `{"chatType":"two"}`, Chat{}, "not an integer"},
		{"fraction", `{"chatType":1.5}`, Chat{}, "not an integer"},
		{"object as id", `{"to":{}}`, Chat{}, "not a string or number"},
		{"not json", `hello`, Chat{}, "invalid"},
		{"array", `[]`, Chat{}, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Chat
			err := Decode([]byte(tt.body), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Extras) != string(tt.want.Extras) {
				t.Fatalf("extras %s, want %s", got.Extras, tt.want.Extras)
			}
			got.Extras, tt.want.Extras = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPeekCmd(t *testing.T) {
	tests := []struct {
		body    string
		want    Cmd
		wantErr string
	}{
		{`{"cmd":11}`, CmdChatReq, ""},
		{`{"cmd":"5","userId":"a"}`, CmdLoginReq, ""},
		{`{"userId":"a"}`, 0, "no \"cmd\""},
		{`{"cmd":300}`, 0, "out of range"},
		{`{"cmd":-1}`, 0, "out of range"},
		{`not json`, 0, "invalid JSON"},
		{`  {"a":{"cmd":1},"cmd":"13"}`, CmdHeartbeatReq, ""},
		{`{"cmd":1.5}`, 0, "not an integer"},
		{`{"cmd":"x"}`, 0, "not a number"},
		{`{"cmd":null}`, 0, "null"},
		{`{"cmd":[11]}`, 0, "not a number"},
		{`[{"cmd":11}]`, 0, "not a JSON object"},
	}
	for _, tt := range tests {
		got, err := PeekCmd([]byte(tt.body))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("PeekCmd(%s) err = %v, want %q", tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("PeekCmd(%s) = %d, %v; want %d", tt.body, got, err, tt.want)
		}
	}
}

func TestCmdResponseAndNames(t *testing.T) {
	tests := []struct {
		cmd      Cmd
		resp     Cmd
		name     string
		validReq bool
	}{
		{CmdChatReq, CmdChatResp, "COMMAND_CHAT_REQ", true},
		{CmdLoginReq, CmdLoginResp, "COMMAND_LOGIN_REQ", true},
		{CmdHeartbeatReq, CmdHeartbeatReq, "COMMAND_HEARTBEAT_REQ", true},
		{CmdCloseReq, CmdCloseReq, "COMMAND_CLOSE_REQ", true},
		{99, 99, "COMMAND_UNKNOWN_99", false},
		{0, 0, "COMMAND_ERROR", false},
	}
	for _, tt := range tests {
		if tt.cmd.Response() != tt.resp || tt.cmd.String() != tt.name || tt.cmd.Valid() != tt.validReq {
			t.Errorf("cmd %d: response %d name %s valid %v", tt.cmd, tt.cmd.Response(), tt.cmd, tt.cmd.Valid())
		}
	}
}

func TestErrorPacket(t *testing.T) {
	p := ErrorPacket(CmdChatResp, StatusNotLoggedIn, "")
	var r struct {
		Cmd     int    `json:"cmd"`
		Code    int    `json:"code"`
		Msg     string `json:"msg"`
		Command string `json:"command"`
	}
	if err := json.Unmarshal(p.Body, &r); err != nil {
		t.Fatal(err)
	}
	if p.Cmd != CmdChatResp || r.Cmd != 12 || r.Code != 10023 || r.Msg != "not logged in" || r.Command != "COMMAND_CHAT_RESP" {
		t.Fatalf("got %+v", r)
	}
}

// FuzzDecodeBodies feeds untrusted JSON to every body type a client can send: decoding
// must fail cleanly or succeed, never panic, and a decoded chat must re-encode.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range []string{`{"cmd":11,"to":"b","chatType":"2","content":"x","extras":{"k":[1]}}`,
		`{"cmd":"5","userId":7,"password":"p"}`, `{"cmd":19,"userId":"a","type":"1","count":"20"}`,
		`{"cmd":"1e2"}`, `{"to":-0}`, `{"createTime":"99999999999999999999"}`, `null`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Chat
		if Decode(b, &c) == nil {
			if _, err := json.Marshal(c); err != nil && len(c.Extras) == 0 {
				t.Fatalf("decoded chat does not re-encode: %v", err)
			}
		}
		var l Login
		_ = Decode(b, &l)
		var q GetMessage
		_ = Decode(b, &q)
		var u GetUser
		_ = Decode(b, &u)
		_, _ = PeekCmd(b)
	})
}

func TestStrEscapes(t *testing.T) {
	var c Chat
	if err := Decode([]byte(`{"to":"a\"b\u00e9","id":"plain"}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.To != "a\"bé" || c.ID != "plain" {
		t.Fatalf("got to=%q id=%q", c.To, c.ID)
	}
}

func BenchmarkDecodeChat(b *testing.B) {
	body := []byte(`{"cmd":11,"to":"bob","chatType":2,"msgType":0,"content":"hello there","createTime":1700000000000}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var c Chat
		if err := Decode(body, &c); err != nil {
			b.Fatal(err)
		}
	}
}
