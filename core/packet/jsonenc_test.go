package packet

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te\back`, "<a href='x'>&amp;</a>", "tab\tnl\ncr\rbs\bff\f",
		"\x00\x01\x1f\x7f", "日本語 😀", "line\u2028para\u2029", "\u00e9\u0301"} {
		got, ok := AppendJSONString(nil, s)
		want, _ := json.Marshal(s)
		if !ok || string(got) != string(want) {
			t.Errorf("AppendJSONString(%q) = %s, %v; want %s", s, got, ok, want)
		}
	}
	if got, ok := AppendJSONString([]byte("x"), "bad\xff"); ok || string(got) != "x" {
		t.Errorf("invalid UTF-8: %q %v, want refused and dst unchanged", got, ok)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a<b>&c", "\u2028", "\x00\"\\", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := AppendJSONString(nil, s)
		if !utf8.ValidString(s) {
			if ok {
				t.Fatalf("invalid UTF-8 %q accepted", s)
			}
			return
		}
		want, _ := json.Marshal(s)
		if !ok || string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// TestAppendChatSeq: AppendChatSeq writes the chat with the given seq (0 omitted), as
// Marshal of a copy with that Seq, and leaves the chat alone.
func TestAppendChatSeq(t *testing.T) {
	for _, tc := range []struct {
		chat Chat
		seq  int64
	}{
		{Chat{ID: "m1", From: "alice", To: "bob", Cmd: 11, ChatType: 2, Content: "hi"}, 7},
		{Chat{ID: "m1", From: "alice", To: "bob", Cmd: 11, ChatType: 2, Content: "hi", Seq: 3}, 0},
		{Chat{ID: "g1", From: "alice", GroupID: "g", Cmd: 11, ChatType: 1, Content: "<&>", Seq: 3}, 9},
	} {
		before := tc.chat
		got, ok := AppendChatSeq(nil, &tc.chat, tc.seq)
		c := tc.chat
		c.Seq = tc.seq
		want, _ := json.Marshal(&c)
		if !ok || string(got) != string(want) {
			t.Errorf("AppendChatSeq(%+v, %d) =\n %s\nwant\n %s", tc.chat, tc.seq, got, want)
		}
		if !reflect.DeepEqual(tc.chat, before) {
			t.Errorf("AppendChatSeq changed the chat: %+v, was %+v", tc.chat, before)
		}
	}
}

func TestAppendChatMatchesMarshal(t *testing.T) {
	for _, c := range []Chat{
		{Cmd: 11, Content: ""},
		{ID: "m1", From: "alice", To: "bob", Cmd: 11, CreateTime: 1700000000000, MsgType: 1, ChatType: 2, Content: "hi <b>bob</b> & \"co\""},
		{ID: "g1", From: "alice", Cmd: 11, ChatType: 1, GroupID: "room/1", Content: "多语言 😀\n", Seq: 42, Recalled: true},
		{From: "x", Cmd: 11, CreateTime: -5, MsgType: -1, ChatType: 0, Content: "\u2028"},
	} {
		got, ok := AppendChat([]byte("prefix"), &c)
		want, _ := json.Marshal(&c)
		if !ok || string(got) != "prefix"+string(want) {
			t.Errorf("AppendChat(%+v) =\n %s\nwant\n %s", c, got, want)
		}
		viaSonic, _ := Marshal(&c)
		var a, b any
		if json.Unmarshal(got[len("prefix"):], &a) != nil || json.Unmarshal(viaSonic, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("AppendChat and Marshal disagree:\n %s\n %s", got, viaSonic)
		}
	}
	for name, c := range map[string]Chat{
		"extras":       {Cmd: 11, Extras: json.RawMessage(`{"k": 1}`)},
		"invalid utf8": {Cmd: 11, Content: "bad\xff"},
	} {
		if got, ok := AppendChat([]byte("p"), &c); ok || string(got) != "p" {
			t.Errorf("%s: %q %v, want refused with dst unchanged", name, got, ok)
		}
	}
}

func TestAppendChatAckMatchesMarshal(t *testing.T) {
	type ack struct {
		ID         string `json:"id"`
		CreateTime int64  `json:"createTime"`
		ServerTime int64  `json:"serverTime"`
		Seq        int64  `json:"seq,omitempty"`
		To         string `json:"to,omitempty"`
		GroupID    string `json:"groupId,omitempty"`
		Delivered  int    `json:"delivered"`
		Duplicate  bool   `json:"duplicate,omitempty"`
	}
	for _, tc := range []struct {
		code Status
		a    ChatAck
	}{
		{StatusOK, ChatAck{ID: "m1", CreateTime: 1, ServerTime: 2, To: "bob", Delivered: 2}},
		{StatusOffline, ChatAck{ID: "m<2>", CreateTime: 1, ServerTime: 2, Seq: 7, To: "b&b"}},
		{StatusOK, ChatAck{ID: "g", CreateTime: 3, ServerTime: 4, Seq: 9, GroupID: "room", Delivered: 10000, Duplicate: true}},
	} {
		got, ok := AppendChatAck(nil, tc.code, tc.a)
		r := NewResponse(CmdChatResp, tc.code)
		r.Data = ack(tc.a)
		want, _ := json.Marshal(r)
		if !ok || string(got) != string(want) {
			t.Errorf("AppendChatAck =\n %s\nwant\n %s", got, want)
		}
	}
}

func BenchmarkEncodeChat(b *testing.B) {
	c := &Chat{ID: "a1b2c3d4e5f6", From: "user-000123", To: "user-000456", Cmd: 11, CreateTime: 1700000000000,
		ChatType: 2, Content: "hello, this is a typical chat message of some sixty-four bytes.."}
	b.Run("Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = Marshal(c)
		}
	})
	buf := make([]byte, 0, 512)
	b.Run("AppendChat", func(b *testing.B) {
		for b.Loop() {
			buf, _ = AppendChat(buf[:0], c)
		}
	})
}

func BenchmarkAppendChatAck(b *testing.B) {
	a := ChatAck{ID: "a1b2c3d4e5f6", CreateTime: 1700000000000, ServerTime: 1700000000001, To: "user-000456", Delivered: 1}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendChatAck(buf[:0], StatusOK, a)
	}
}
