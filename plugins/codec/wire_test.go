package codec

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	want := []Frame{
		{Kind: KindOpen, Conn: 1, Remote: "127.0.0.1:5000", Transport: "mqtt+tls"},
		{Kind: KindData, Conn: 1, Data: []byte{0x10, 0x00}},
		{Kind: KindPacket, Conn: 300, Cmd: CmdChatReq, Data: []byte(`{"cmd":11}`)},
		{Kind: KindWrite, Conn: 1 << 40, Data: []byte("hello")},
		{Kind: KindClose, Conn: 2, Reason: "bye"},
		{Kind: KindData, Conn: 3, Data: []byte{}},
		{Kind: KindClosed, Conn: 9},
	}
	var b []byte
	for _, f := range want {
		switch f.Kind {
		case KindOpen:
			b = AppendOpen(b, f.Conn, f.Remote, f.Transport)
		case KindData, KindWrite:
			b = AppendData(b, f.Kind, f.Conn, f.Data)
		case KindPacket:
			b = AppendPacket(b, f.Conn, Packet{Cmd: f.Cmd, Body: f.Data})
		case KindClose:
			b = AppendClose(b, f.Conn, f.Reason)
		case KindClosed:
			b = AppendClosed(b, f.Conn)
		}
	}
	var got []Frame
	for len(b) > 0 {
		var f Frame
		var err error
		if b, err = NextFrame(b, &f); err != nil {
			t.Fatal(err)
		}
		if f.Data == nil && (f.Kind == KindData || f.Kind == KindWrite || f.Kind == KindPacket) {
			f.Data = []byte{}
		}
		got = append(got, f)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("frames:\n got %+v\nwant %+v", got, want)
	}
}

func TestNextFrameMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown kind", []byte{9, 1}},
		{"no id", []byte{byte(KindData)}},
		{"length beyond", []byte{byte(KindData), 1, 5, 'a'}},
		{"packet without cmd", []byte{byte(KindPacket), 1}},
		{"open without transport", []byte{byte(KindOpen), 1, 1, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			if _, err := NextFrame(tt.in, &f); !errors.Is(err, ErrMalformed) {
				t.Fatalf("NextFrame(%x): err = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}

func FuzzNextFrame(f *testing.F) {
	f.Add(AppendOpen(nil, 7, "1.2.3.4:5", "mqtt"))
	f.Add(AppendPacket(nil, 1, Packet{Cmd: 11, Body: []byte("{}")}))
	f.Add(AppendClose(AppendData(nil, KindWrite, 2, []byte("x")), 2, "r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for rest := b; len(rest) > 0; {
			var fr Frame
			next, err := NextFrame(rest, &fr)
			if err != nil {
				return
			}
			if len(next) >= len(rest) {
				t.Fatal("NextFrame consumed nothing")
			}
			// Re-encoding a decoded frame gives the bytes it was decoded from.
			var enc []byte
			switch fr.Kind {
			case KindOpen:
				enc = AppendOpen(nil, fr.Conn, fr.Remote, fr.Transport)
			case KindData, KindWrite:
				enc = AppendData(nil, fr.Kind, fr.Conn, fr.Data)
			case KindPacket:
				enc = AppendPacket(nil, fr.Conn, fr.Packet())
			case KindClose:
				enc = AppendClose(nil, fr.Conn, fr.Reason)
			case KindClosed:
				enc = AppendClosed(nil, fr.Conn)
			}
			var again Frame
			if _, err := NextFrame(enc, &again); err != nil || again.Kind != fr.Kind || again.Conn != fr.Conn ||
				!bytes.Equal(again.Data, fr.Data) || again.Reason != fr.Reason || again.Remote != fr.Remote {
				t.Fatalf("re-encoded frame differs: %+v vs %+v (%v)", again, fr, err)
			}
			rest = next
		}
	})
}
