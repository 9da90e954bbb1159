package mqtt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func connectPacket(c Connect) *Packet {
	if c.ProtocolName == "" {
		c.ProtocolName, c.Level = "MQTT", 4
	}
	return &Packet{Type: CONNECT, Connect: &c}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    *Packet
	}{
		{"connect minimal", connectPacket(Connect{CleanSession: true, KeepAlive: 60, ClientID: "c1"})},
		{"connect full", connectPacket(Connect{KeepAlive: 5, ClientID: "c2", WillFlag: true, WillQoS: 1, WillRetain: true,
			WillTopic: "w", WillMessage: []byte("bye"), HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("pw")})},
		{"connect 3.1", &Packet{Type: CONNECT, Connect: &Connect{ProtocolName: "MQIsdp", Level: 3}}},
		{"connack", &Packet{Type: CONNACK, SessionPresent: true, ReturnCode: 5}},
		{"publish qos0", &Packet{Type: PUBLISH, Topic: "chat/user/bob", Payload: []byte("hi")}},
		{"publish qos1 dup retain", &Packet{Type: PUBLISH, Topic: "t", QoS: 1, PacketID: 7, Dup: true, Retain: true, Payload: []byte{}}},
		{"publish large", &Packet{Type: PUBLISH, Topic: "t", Payload: bytes.Repeat([]byte("x"), 20000)}},
		{"puback", &Packet{Type: PUBACK, PacketID: 1}},
		{"pubrel", &Packet{Type: PUBREL, PacketID: 65535}},
		{"subscribe", &Packet{Type: SUBSCRIBE, PacketID: 3, Subscriptions: []Subscription{{"a", 0}, {"b/c", 2}}}},
		{"suback", &Packet{Type: SUBACK, PacketID: 3, ReturnCodes: []byte{0, 1, 0x80}}},
		{"unsubscribe", &Packet{Type: UNSUBSCRIBE, PacketID: 4, Subscriptions: []Subscription{{Filter: "a"}}}},
		{"unsuback", &Packet{Type: UNSUBACK, PacketID: 4}},
		{"pingreq", &Packet{Type: PINGREQ}},
		{"pingresp", &Packet{Type: PINGRESP}},
		{"disconnect", &Packet{Type: DISCONNECT}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Encode(nil, tt.p)
			// Byte by byte: no whole packet until the last byte.
			for i := range len(b) - 1 {
				if _, n, err := Parse(b[:i], 0); n != 0 || err != nil {
					t.Fatalf("Parse of %d/%d bytes: n=%d err=%v", i, len(b), n, err)
				}
			}
			got, n, err := Parse(append(b, 0xE0, 0x00), 0) // followed by another packet
			if err != nil || n != len(b) {
				t.Fatalf("Parse: n=%d (want %d) err=%v", n, len(b), err)
			}
			if !reflect.DeepEqual(&got, tt.p) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.p)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"reserved type 0", []byte{0x00, 0x00}, ErrMalformed},
		{"reserved type 15", []byte{0xF0, 0x00}, ErrMalformed},
		{"5-byte length", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, ErrMalformed},
		{"too large", []byte{0x30, 0xFF, 0x7F}, ErrTooLarge},
		{"publish qos3", []byte{0x36, 0x03, 0x00, 0x01, 't'}, ErrMalformed},
		{"publish dup qos0", []byte{0x38, 0x03, 0x00, 0x01, 't'}, ErrMalformed},
		{"publish wildcard topic", []byte{0x30, 0x03, 0x00, 0x01, '#'}, ErrMalformed},
		{"publish empty topic", []byte{0x30, 0x02, 0x00, 0x00}, ErrMalformed},
		{"publish bad utf8", []byte{0x30, 0x03, 0x00, 0x01, 0xFF}, ErrMalformed},
		{"publish nul in topic", []byte{0x30, 0x03, 0x00, 0x01, 0x00}, ErrMalformed},
		{"publish qos1 id 0", []byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}, ErrMalformed},
		{"subscribe bad flags", []byte{0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}, ErrMalformed},
		{"subscribe no filter", []byte{0x82, 0x02, 0x00, 0x01}, ErrMalformed},
		{"subscribe qos 3", []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03}, ErrMalformed},
		{"puback long", []byte{0x40, 0x03, 0x00, 0x01, 0x00}, ErrMalformed},
		{"pingreq with body", []byte{0xC0, 0x01, 0x00}, ErrMalformed},
		{"connect reserved flag", []byte{0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 0, 0, 1, 'c'}, ErrMalformed},
		{"connect password without user", []byte{0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 0, 0, 1, 'c'}, ErrMalformed},
		{"connect will qos without will", []byte{0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0A, 0, 0, 0, 1, 'c'}, ErrMalformed},
		{"connect truncated", []byte{0x10, 0x0B, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(tt.in, 1000)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(% x): err = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []*Packet{
		connectPacket(Connect{CleanSession: true, KeepAlive: 60, ClientID: "c", HasUsername: true, Username: "u", HasPassword: true, Password: []byte("p")}),
		{Type: PUBLISH, Topic: "chat/user/bob", QoS: 1, PacketID: 9, Payload: []byte(`{"content":"hi"}`)},
		{Type: SUBSCRIBE, PacketID: 1, Subscriptions: []Subscription{{"inbox/a", 1}}},
		{Type: UNSUBSCRIBE, PacketID: 1, Subscriptions: []Subscription{{Filter: "x"}}},
		{Type: SUBACK, PacketID: 1, ReturnCodes: []byte{0x80}},
		{Type: PINGREQ},
	} {
		f.Add(Encode(nil, p))
	}
	f.Add([]byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := Parse(b, 1<<16)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		// What Parse accepts, Encode writes back, and Parse reads the same again.
		enc := Encode(nil, &p)
		again, m, err := Parse(enc, 0)
		if err != nil || m != len(enc) {
			t.Fatalf("re-parse of %x (from %x): n=%d err=%v", enc, b[:n], m, err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(p)) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", again, p)
		}
	})
}

// normalize makes empty and nil slices compare equal.
func normalize(p Packet) Packet {
	if len(p.Payload) == 0 {
		p.Payload = nil
	}
	if len(p.ReturnCodes) == 0 {
		p.ReturnCodes = nil
	}
	if p.Connect != nil {
		c := *p.Connect
		if len(c.WillMessage) == 0 {
			c.WillMessage = nil
		}
		if len(c.Password) == 0 {
			c.Password = nil
		}
		p.Connect = &c
	}
	return p
}
