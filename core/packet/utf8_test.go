package packet

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status Status // DecodeStatus of the error; 0: decodes
		msg    string
	}{
		{name: "valid", body: `{"to":"b","content":"héllo 世界 🎉"}`},
		{name: "bad byte in content", body: "{\"to\":\"b\",\"content\":\"h\xffi\"}", status: StatusInvalidUTF8, msg: "byte 0xff at offset 22"},
		{name: "bad byte in an id", body: "{\"to\":\"\xd3\"}", status: StatusInvalidUTF8, msg: "byte 0xd3 at offset 7"},
		{name: "truncated rune", body: "{\"content\":\"\xe4\xb8\"}", status: StatusInvalidUTF8, msg: "0xe4"},
		{name: "surrogate encoded in UTF-8", body: "{\"content\":\"\xed\xa0\x80\"}", status: StatusInvalidUTF8, msg: "0xed"},
		{name: "bad byte outside strings", body: "{\"to\":\"b\"}\xff", status: StatusInvalidUTF8},
		{name: "other errors stay 10020", body: `{"to":`, status: StatusInvalidBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Chat
			err := Decode([]byte(tc.body), &c)
			if tc.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("decoded %+v, want an error", c)
			}
			if got := DecodeStatus(err); got != tc.status {
				t.Errorf("status %d (%v), want %d", got, err, tc.status)
			}
			if tc.status == StatusInvalidUTF8 && !errors.Is(err, ErrInvalidUTF8) {
				t.Errorf("%v does not wrap ErrInvalidUTF8", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name %q", err, tc.msg)
			}
		})
	}
}
