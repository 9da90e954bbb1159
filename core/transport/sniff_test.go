package transport

import (
	"testing"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/codec/tcp"
	"github.com/timgw/timgw/core/packet"
)

func TestSniff(t *testing.T) {
	login := tcp.Frame(packet.CmdLoginReq, []byte(`{"userId":"a"}`))
	tests := []struct {
		name string
		in   string
		want kind
	}{
		{"empty", "", kindMore},
		{"tcp login", string(login), kindTCP},
		{"tcp header only", string(login[:5]), kindMore},
		{"cmd byte then not json", "\x05\x00\x00\x00\x02[]", kindUnknown},
		{"cmd 21 is not t-im", "\x15\x00\x00\x00\x02{}", kindUnknown},
		{"tls client hello", "\x16\x03\x01\x02\x00", kindTLS},
		{"http post", "POST /api/message/send HTTP/1.1\r\n", kindHTTP},
		{"http get", "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", kindHTTP},
		{"partial method", "GE", kindMore},
		{"get head incomplete", "GET / HTTP/1.1\r\nHost: x\r\n", kindMore},
		{"websocket upgrade", "GET /?username=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", kindWS},
		{"websocket upgrade mixed case", "GET / HTTP/1.1\r\nupgrade:  WebSocket\r\n\r\n", kindWS},
		{"lowercase method", "get / HTTP/1.1\r\n\r\n", kindUnknown},
		{"binary junk", "\xff\xfe", kindUnknown},
		{"ascii junk", "HELLO\r\n", kindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sniff([]byte(tt.in)); got != tt.want {
				t.Errorf("sniff(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

type fakeProto struct {
	name   string
	prefix string
}

func (p fakeProto) Name() string { return p.name }
func (p fakeProto) Recognize(b []byte) codec.Match {
	n := min(len(b), len(p.prefix))
	switch {
	case string(b[:n]) != p.prefix[:n]:
		return codec.NoMatch
	case n < len(p.prefix):
		return codec.NeedMore
	}
	return codec.Matched
}
func (p fakeProto) NewCodec(codec.Options) codec.Codec { return tcp.New(codec.Options{}) }

func TestSniffAllConsultsProtocolsAfterBuiltins(t *testing.T) {
	mqtt := fakeProto{"mqtt", "\x10\x0c\x00\x04MQTT"}
	line := fakeProto{"line", "LOGIN "}
	protos := []codec.Protocol{mqtt, line}
	tests := []struct {
		name      string
		in        string
		wantKind  kind
		wantProto string
	}{
		{"mqtt connect", "\x10\x0c\x00\x04MQTT\x04\x02", kindExt, "mqtt"},
		{"mqtt prefix needs more", "\x10\x0c\x00\x04MQ", kindMore, ""},
		{"t-im frame with cmd 16 wins", "\x10\x00\x00\x00\x02{}", kindTCP, ""},
		{"line protocol", "LOGIN alice\n", kindExt, "line"},
		{"partial line prefix", "LOG", kindMore, ""},
		{"http is builtin", "POST / HTTP/1.1\r\n", kindHTTP, ""},
		{"nobody", "\xff", kindUnknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, p := sniffAll([]byte(tt.in), protos)
			name := ""
			if p != nil {
				name = p.Name()
			}
			if k != tt.wantKind || name != tt.wantProto {
				t.Errorf("sniffAll(%q) = %v/%q, want %v/%q", tt.in, k, name, tt.wantKind, tt.wantProto)
			}
		})
	}
}

func FuzzSniff(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"))
	f.Add(tcp.Frame(packet.CmdChatReq, []byte(`{"cmd":11}`)))
	f.Add([]byte{0x16, 3, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		k := sniff(b)
		if k == kindTCP && (len(b) < 6 || b[5] != '{') {
			t.Fatalf("tcp without '{' at byte 5: %q", b)
		}
		if k == kindMore && len(b) >= maxSniff {
			t.Fatalf("asks for more after %d bytes", len(b))
		}
	})
}
