package mqtt

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendJSONString(t *testing.T) {
	tests := []string{"", "plain", `q"uote\back`, "new\nline\ttab\r", "\x00\x1f", "héllo 世界 🎉", "\u2028\u2029", "bad\xffutf8"}
	for _, s := range tests {
		b := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Fatalf("%q → %s → %q, want %q", s, b, back, want)
		}
		// Invalid UTF-8 is kept, for the gateway to refuse (10036).
		if got, inner := utf8.Valid(b), b[1:len(b)-1]; got != utf8.ValidString(s) || (!got && !strings.Contains(string(inner), "\xff")) {
			t.Fatalf("%q → %s: invalid UTF-8 not kept as it is", s, b)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"b\\c\x01é\xff")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, []byte(s))
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q → %q", s, back)
		}
	})
}
