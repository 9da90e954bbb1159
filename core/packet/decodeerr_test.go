package packet

import (
	"regexp"
	"strings"
	"testing"
)

// goTypeName matches what a Go type looks like in an error: pkg.Type, *pkg.Type, or the
// words decoders use around them.
var goTypeName = regexp.MustCompile(`\*?\b[a-z][a-z0-9]*\.[A-Z][A-Za-z0-9]*\b|Go (value|struct)|Mismatch type`)

func TestDecodeErrorsNameNoGoTypes(t *testing.T) {
	tests := []struct {
		name string
		into any
		body string
		want string
	}{
		{"login: object as user id", &Login{}, `{"userId":{}}`, `invalid body: field "userId": not a string or number: "{}"`},
		{"login: number as password", &Login{}, `{"userId":"a","password":5}`, `invalid body: field "password": expected a string, got JSON number`},
		{"login: array body", &Login{}, `[1]`, `invalid body: expected a JSON object, got an array`},
		{"login: string body", &Login{}, `"x"`, `invalid body: expected a JSON object, got a string`},
		{"login: truncated", &Login{}, `{"userId":"a"`, `invalid body: invalid JSON: unexpected end of body at byte 13`},
		{"login: bad literal", &Login{}, "{\n\"userId\": nul}", `invalid body: invalid JSON at byte 15 (line 2, column 14)`},
		{"login: empty", &Login{}, ``, `invalid body: empty body: expected a JSON object`},
		{"chat: word as chatType", &Chat{}, `{"chatType":"abc"}`, `invalid body: field "chatType": not an integer: "abc"`},
		{"chat: float as msgType", &Chat{}, `{"msgType":1.5}`, `invalid body: field "msgType": not an integer: "1.5"`},
		{"chat: number as content", &Chat{}, `{"content":5}`, `invalid body: field "content": expected a string, got JSON number`},
		{"chat: bool as to", &Chat{}, `{"to":true}`, `invalid body: field "to": not a string or number: "true"`},
		{"chat: array as groupId", &Chat{}, `{"groupId":[1]}`, `invalid body: field "groupId": not a string or number: "[1]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode([]byte(tt.body), tt.into)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("error %q, want it to start with %q", msg, tt.want)
			}
			if m := goTypeName.FindString(msg); m != "" {
				t.Errorf("error %q names the Go type %q", msg, m)
			}
			if strings.ContainsAny(msg, "\n\t") {
				t.Errorf("error %q spans lines", msg)
			}
		})
	}
}
