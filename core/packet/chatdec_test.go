package packet

import (
	"reflect"
	"testing"
	"unsafe"
)

// chatDecodeSeeds are chat bodies of every shape: the fast decoder's and sonic's results
// must agree on each (TestDecodeChatFastMatchesSonic, FuzzDecodeChatFast).
var chatDecodeSeeds = []string{
	`{"cmd":11,"to":"bob","chatType":2,"msgType":0,"content":"hello there","createTime":1700000000000}`,
	`{"from":"mallory","to":"bob","cmd":11,"createTime":1700000000000,"msgType":0,"chatType":2,"groupId":"","content":"x"}`,
	` { "cmd" : "11" , "to" : 42 , "chatType" : " 2 " , "content" : "" } `,
	`{"cmd":11,"chatType":1,"groupId":"room/1","content":"a\"b\\c\/d\n\t\u00e9\u2028 <&>"}`,
	`{"cmd":11,"content":"\ud83d\ude00"}`,
	`{"cmd":11,"content":"\ud83d"}`,
	`{"cmd":11,"content":"\x"}`,
	`{"cmd":11,"to":"a\"b\u00e9","id":"plain"}`,
	`{"cmd":11,"to":1.5e3,"id":-0,"createTime":"1e3","msgType":2.0,"chatType":"x"}`,
	`{"cmd":11,"to":"a","to":"b","seq":7,"seq":-3,"recalled":true}`,
	`{"cmd":11,"recalled":false,"seq":"7"}`,
	`{"cmd":11,"seq":1.0}`,
	`{"cmd":11,"seq":99999999999999999999}`,
	`{"cmd":11,"createTime":99999999999999999999}`,
	`{"cmd":11,"createTime":"99999999999999999999"}`,
	`{"cmd":11,"content":5}`,
	`{"cmd":11,"to":null}`,
	`{"cmd":11,"ID":"x"}`,
	`{"cmd":11,"extras":{"k":[1]}}`,
	`{"cmd":11,"unknown":1}`,
	`{"cmd":11,}`,
	`{"cmd":11`,
	`{"cmd":11} x`,
	`{"cmd":01}`,
	`{"cmd":-}`,
	`{"cmd":1.}`,
	`{"cmd":1e}`,
	`{"cmd":"1\u0031"}`,
	`{"c\u006dd":11}`,
	`{}`,
	`[]`,
	`null`,
	``,
	"{\"cmd\":11,\"content\":\"tab\tinside\"}",
	`{"cmd":11,"content":"日本語 😀"}`,
}

// decodeBoth decodes b with the fast decoder and with sonic.
func decodeBoth(b []byte) (fast Chat, fastOK bool, slow Chat, slowErr error) {
	if CheckUTF8(b) != nil {
		return fast, false, slow, nil
	}
	fastOK = decodeChatFast(b, &fast)
	slowErr = jsonAPI.Unmarshal(b, &slow)
	return
}

func TestDecodeChatFastMatchesSonic(t *testing.T) {
	fastCount := 0
	for _, s := range chatDecodeSeeds {
		fast, ok, slow, err := decodeBoth([]byte(s))
		if !ok {
			continue
		}
		fastCount++
		if err != nil {
			t.Errorf("%s: fast decoder accepted what sonic refuses (%v): %+v", s, err, fast)
		} else if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s:\n fast %+v\n sonic %+v", s, fast, slow)
		}
	}
	if fastCount < 8 {
		t.Errorf("the fast decoder took only %d of the seeds", fastCount)
	}
}

func TestDecodeChatFastTakesCommonShapes(t *testing.T) {
	for _, tc := range []struct {
		body string
		want Chat
	}{
		{`{"cmd":11,"to":"bob","chatType":2,"msgType":0,"content":"hi","createTime":5}`,
			Chat{Cmd: 11, To: "bob", ChatType: 2, Content: "hi", CreateTime: 5}},
		{`{"cmd":"11","to":7,"chatType":"1","groupId":"g","content":"a\nb"}`,
			Chat{Cmd: 11, To: "7", ChatType: 1, GroupID: "g", Content: "a\nb"}},
		{`{"from":"spoof","id":"m1","cmd":11,"seq":3,"recalled":true,"content":""}`,
			Chat{From: "spoof", ID: "m1", Cmd: 11, Seq: 3, Recalled: true}},
	} {
		var c Chat
		if !decodeChatFast([]byte(tc.body), &c) {
			t.Errorf("%s: declined", tc.body)
			continue
		}
		if !reflect.DeepEqual(c, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.body, c, tc.want)
		}
	}
}

func TestDecodeChatFastDeclinesLeavesChatAlone(t *testing.T) {
	c := Chat{ID: "keep"}
	if decodeChatFast([]byte(`{"to":"x","extras":{}}`), &c) {
		t.Fatal("extras taken")
	}
	if c.ID != "keep" || c.To != "" {
		t.Fatalf("declined decode changed the chat: %+v", c)
	}
}

// TestDecodeChatOwnedMatchesDecode: DecodeChatOwned decodes every seed (and invalid
// UTF-8) to the same chat or the same error as Decode, and the strings of a chat it took
// in one pass share the body's memory.
func TestDecodeChatOwnedMatchesDecode(t *testing.T) {
	aliased := 0
	for _, s := range append(chatDecodeSeeds, "{\"cmd\":11,\"content\":\"bad\xff\"}") {
		body := []byte(s)
		var owned, plain Chat
		errOwned, errPlain := DecodeChatOwned(body, &owned), Decode([]byte(s), &plain)
		if (errOwned == nil) != (errPlain == nil) || errOwned != nil && errOwned.Error() != errPlain.Error() {
			t.Errorf("%s: DecodeChatOwned error %v, Decode error %v", s, errOwned, errPlain)
			continue
		}
		if !reflect.DeepEqual(owned, plain) {
			t.Errorf("%s:\n owned %+v\n Decode %+v", s, owned, plain)
		}
		if p := unsafe.StringData(owned.Content); errOwned == nil && owned.Content != "" && len(body) > 0 {
			start := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
			if a := uintptr(unsafe.Pointer(p)); a >= start && a < start+uintptr(len(body)) {
				aliased++
			}
		}
	}
	if aliased < 3 {
		t.Errorf("only %d chats share the body's memory", aliased)
	}
}

// FuzzDecodeChatFast: whenever the fast decoder takes a body, sonic must take it too and
// decode the same chat.
func FuzzDecodeChatFast(f *testing.F) {
	for _, s := range chatDecodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok, slow, err := decodeBoth(b)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("%q: fast decoder accepted what sonic refuses (%v): %+v", b, err, fast)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\n fast %+v\n sonic %+v", b, fast, slow)
		}
	})
}

func BenchmarkDecodeChatSonic(b *testing.B) {
	body := []byte(`{"cmd":11,"to":"bob","chatType":2,"msgType":0,"content":"hello there","createTime":1700000000000}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var c Chat
		if err := jsonAPI.Unmarshal(body, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeChatOwned decodes a chat as timgw-bench sends it (64 bytes of content)
// the way the gateway decodes one from a connection.
func BenchmarkDecodeChatOwned(b *testing.B) {
	body := []byte(`{"cmd":11,"chatType":2,"msgType":0,"to":"u_r123","content":"t=1234567890123 s=42 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	b.ReportAllocs()
	for b.Loop() {
		var c Chat
		if err := DecodeChatOwned(body, &c); err != nil || c.To != "u_r123" {
			b.Fatal(err, c.To)
		}
	}
}
