// Package mqtt is timgw's MQTT 3.1.1 codec plugin: the packet codec (Parse, Encode)
// and the plugin that maps MQTT sessions onto t-im packets (Plugin). The executable
// plugins/codec-mqtt serves it; timgw also runs it from its own binary.
package mqtt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Type is an MQTT control packet type.
type Type byte

// Control packet types (MQTT 3.1.1 section 2.2.1).
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "RESERVED"}

// String names the packet type.
func (t Type) String() string { return typeNames[t&0x0F] }

// CONNACK return codes (section 3.2.2.3).
const (
	Accepted                   byte = 0
	RefusedProtocolVersion     byte = 1
	RefusedIdentifierRejected  byte = 2
	RefusedServerUnavailable   byte = 3
	RefusedBadUsernamePassword byte = 4
	RefusedNotAuthorized       byte = 5
	SubackFailure              byte = 0x80 // SUBACK return code of a refused filter
	protocolName                    = "MQTT"
	protocolLevel              byte = 4
)

// ErrMalformed is wrapped by the errors of bytes that are not MQTT 3.1.1.
var ErrMalformed = errors.New("malformed MQTT packet")

// ErrTooLarge is wrapped when a packet's remaining length exceeds the limit.
var ErrTooLarge = errors.New("MQTT packet too large")

// Connect is the variable header and payload of CONNECT.
type Connect struct {
	ProtocolName string
	Level        byte
	CleanSession bool
	KeepAlive    uint16 // seconds
	ClientID     string
	WillFlag     bool
	WillQoS      byte
	WillRetain   bool
	WillTopic    string
	WillMessage  []byte
	HasUsername  bool
	Username     string
	HasPassword  bool
	Password     []byte
}

// Subscription is one topic filter of SUBSCRIBE (QoS) or UNSUBSCRIBE.
type Subscription struct {
	Filter string
	QoS    byte
}

// Packet is one MQTT control packet. Which fields are set depends on Type. Byte slices
// returned by Parse alias its input.
type Packet struct {
	Type Type
	// PUBLISH
	Dup     bool
	QoS     byte
	Retain  bool
	Topic   string
	Payload []byte
	// PUBLISH (QoS > 0), PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK,
	// UNSUBSCRIBE, UNSUBACK
	PacketID uint16
	// CONNECT
	Connect *Connect
	// CONNACK
	SessionPresent bool
	ReturnCode     byte
	// SUBSCRIBE, UNSUBSCRIBE (QoS unused)
	Subscriptions []Subscription
	// SUBACK
	ReturnCodes []byte
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Parse decodes the packet at the front of b. It returns n == 0 and no error when b
// holds no whole packet yet. A remaining length over maxSize (when > 0) is ErrTooLarge.
//
// A CONNECT whose protocol name is not "MQTT" or whose level is not 4 is returned with
// only ProtocolName and Level set (no error), so that the caller can answer it with
// return code 1.
func Parse(b []byte, maxSize int) (p Packet, n int, err error) {
	if len(b) < 2 {
		return p, 0, nil
	}
	var rl, i int
	for shift := 0; ; shift += 7 {
		if i == 4 {
			return p, 0, malformed("remaining length longer than 4 bytes")
		}
		if 1+i >= len(b) {
			return p, 0, nil
		}
		c := b[1+i]
		i++
		rl |= int(c&0x7F) << shift
		if c&0x80 == 0 {
			break
		}
	}
	if maxSize > 0 && rl > maxSize {
		return p, 0, fmt.Errorf("%w: remaining length %d, limit %d", ErrTooLarge, rl, maxSize)
	}
	hdr := 1 + i
	if len(b)-hdr < rl {
		return p, 0, nil
	}
	body := b[hdr : hdr+rl]
	p.Type = Type(b[0] >> 4)
	flags := b[0] & 0x0F
	if err := p.parseBody(flags, body); err != nil {
		return Packet{}, 0, fmt.Errorf("%s: %w", p.Type, err)
	}
	return p, hdr + rl, nil
}

// reader reads the fields of a packet body.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = malformed("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint16() uint16 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 2 {
		r.err = malformed("truncated")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) binary() []byte {
	n := int(r.uint16())
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = malformed("string of %d bytes, %d left", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// string reads a UTF-8 string: valid UTF-8 without U+0000 (section 1.5.3).
func (r *reader) string() string {
	v := r.binary()
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(v) || strings.IndexByte(string(v), 0) >= 0 {
		r.err = malformed("string is not valid UTF-8 or contains U+0000")
		return ""
	}
	return string(v)
}

func (r *reader) packetID() uint16 {
	id := r.uint16()
	if r.err == nil && id == 0 {
		r.err = malformed("packet identifier 0")
	}
	return id
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = malformed("%d bytes after the packet's fields", len(r.b))
	}
	return r.err
}

func (p *Packet) parseBody(flags byte, body []byte) error {
	r := &reader{b: body}
	want := byte(0)
	switch p.Type {
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		want = 0x02
	case PUBLISH:
		want = flags
	}
	if flags != want {
		return malformed("flags %#x, want %#x", flags, want)
	}
	switch p.Type {
	case CONNECT:
		return p.parseConnect(r)
	case CONNACK:
		ack := r.byte()
		if ack&0xFE != 0 {
			return malformed("connect acknowledge flags %#x", ack)
		}
		p.SessionPresent = ack == 1
		p.ReturnCode = r.byte()
		return r.end()
	case PUBLISH:
		p.Dup, p.QoS, p.Retain = flags&0x08 != 0, (flags>>1)&0x03, flags&0x01 != 0
		if p.QoS == 3 {
			return malformed("QoS 3")
		}
		if p.QoS == 0 && p.Dup {
			return malformed("DUP set on a QoS 0 message")
		}
		p.Topic = r.string()
		if r.err == nil && (p.Topic == "" || strings.ContainsAny(p.Topic, "+#")) {
			return malformed("topic name %q is empty or has wildcards", p.Topic)
		}
		if p.QoS > 0 {
			p.PacketID = r.packetID()
		}
		if r.err != nil {
			return r.err
		}
		p.Payload = r.b
		return nil
	case PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK:
		p.PacketID = r.packetID()
		return r.end()
	case SUBSCRIBE, UNSUBSCRIBE:
		p.PacketID = r.packetID()
		for r.err == nil && len(r.b) > 0 {
			s := Subscription{Filter: r.string()}
			if p.Type == SUBSCRIBE {
				s.QoS = r.byte()
				if r.err == nil && s.QoS > 2 {
					return malformed("requested QoS byte %#x", s.QoS)
				}
			}
			if r.err == nil && s.Filter == "" {
				return malformed("empty topic filter")
			}
			p.Subscriptions = append(p.Subscriptions, s)
		}
		if r.err == nil && len(p.Subscriptions) == 0 {
			return malformed("no topic filter")
		}
		return r.err
	case SUBACK:
		p.PacketID = r.packetID()
		if r.err == nil && len(r.b) == 0 {
			return malformed("no return code")
		}
		for _, c := range r.b {
			if c > 2 && c != SubackFailure {
				return malformed("SUBACK return code %#x", c)
			}
		}
		p.ReturnCodes = r.b
		return r.err
	case PINGREQ, PINGRESP, DISCONNECT:
		return r.end()
	}
	return malformed("reserved packet type %d", p.Type)
}

func (p *Packet) parseConnect(r *reader) error {
	c := &Connect{ProtocolName: r.string(), Level: r.byte()}
	if r.err != nil {
		return r.err
	}
	p.Connect = c
	if c.ProtocolName != protocolName || c.Level != protocolLevel {
		return nil // the caller answers return code 1
	}
	flags := r.byte()
	c.KeepAlive = r.uint16()
	if r.err != nil {
		return r.err
	}
	if flags&0x01 != 0 {
		return malformed("reserved connect flag set")
	}
	c.CleanSession = flags&0x02 != 0
	c.WillFlag = flags&0x04 != 0
	c.WillQoS = (flags >> 3) & 0x03
	c.WillRetain = flags&0x20 != 0
	c.HasPassword = flags&0x40 != 0
	c.HasUsername = flags&0x80 != 0
	switch {
	case c.WillQoS == 3:
		return malformed("will QoS 3")
	case !c.WillFlag && (c.WillQoS != 0 || c.WillRetain):
		return malformed("will QoS or retain without a will")
	case c.HasPassword && !c.HasUsername:
		return malformed("password without user name")
	}
	c.ClientID = r.string()
	if c.WillFlag {
		c.WillTopic = r.string()
		c.WillMessage = r.binary()
	}
	if c.HasUsername {
		c.Username = r.string()
	}
	if c.HasPassword {
		c.Password = r.binary()
	}
	return r.end()
}

// appendHeader appends a fixed header for a body of n bytes.
func appendHeader(dst []byte, first byte, n int) []byte {
	dst = append(dst, first)
	for {
		c := byte(n & 0x7F)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		dst = append(dst, c)
		if n == 0 {
			return dst
		}
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// AppendPublish appends a PUBLISH packet; packetID is written when qos > 0.
func AppendPublish(dst []byte, topic string, payload []byte, qos byte, packetID uint16, dup, retain bool) []byte {
	first := byte(PUBLISH)<<4 | qos<<1
	if dup {
		first |= 0x08
	}
	if retain {
		first |= 0x01
	}
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	dst = appendHeader(dst, first, n)
	dst = appendString(dst, topic)
	if qos > 0 {
		dst = binary.BigEndian.AppendUint16(dst, packetID)
	}
	return append(dst, payload...)
}

// AppendAck appends a packet made of a packet identifier: PUBACK, PUBREC, PUBREL,
// PUBCOMP or UNSUBACK.
func AppendAck(dst []byte, t Type, packetID uint16) []byte {
	first := byte(t) << 4
	if t == PUBREL {
		first |= 0x02
	}
	dst = appendHeader(dst, first, 2)
	return binary.BigEndian.AppendUint16(dst, packetID)
}

// AppendConnack appends a CONNACK.
func AppendConnack(dst []byte, sessionPresent bool, code byte) []byte {
	ack := byte(0)
	if sessionPresent {
		ack = 1
	}
	return append(dst, byte(CONNACK)<<4, 2, ack, code)
}

// AppendSuback appends a SUBACK.
func AppendSuback(dst []byte, packetID uint16, codes []byte) []byte {
	dst = appendHeader(dst, byte(SUBACK)<<4, 2+len(codes))
	dst = binary.BigEndian.AppendUint16(dst, packetID)
	return append(dst, codes...)
}

// Encode appends the wire form of p. It is the inverse of Parse for every packet Parse
// accepts (strings longer than 65535 bytes cannot be encoded and are cut).
func Encode(dst []byte, p *Packet) []byte {
	switch p.Type {
	case CONNECT:
		return appendConnect(dst, p.Connect)
	case CONNACK:
		return AppendConnack(dst, p.SessionPresent, p.ReturnCode)
	case PUBLISH:
		return AppendPublish(dst, p.Topic, p.Payload, p.QoS, p.PacketID, p.Dup, p.Retain)
	case PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK:
		return AppendAck(dst, p.Type, p.PacketID)
	case SUBSCRIBE, UNSUBSCRIBE:
		n := 2
		for _, s := range p.Subscriptions {
			n += 2 + len(s.Filter)
			if p.Type == SUBSCRIBE {
				n++
			}
		}
		dst = appendHeader(dst, byte(p.Type)<<4|0x02, n)
		dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
		for _, s := range p.Subscriptions {
			dst = appendString(dst, s.Filter)
			if p.Type == SUBSCRIBE {
				dst = append(dst, s.QoS)
			}
		}
		return dst
	case SUBACK:
		return AppendSuback(dst, p.PacketID, p.ReturnCodes)
	default: // PINGREQ, PINGRESP, DISCONNECT
		return append(dst, byte(p.Type)<<4, 0)
	}
}

func appendConnect(dst []byte, c *Connect) []byte {
	if c.ProtocolName != protocolName || c.Level != protocolLevel {
		n := 2 + len(c.ProtocolName) + 1
		dst = appendHeader(dst, byte(CONNECT)<<4, n)
		dst = appendString(dst, c.ProtocolName)
		return append(dst, c.Level)
	}
	var flags byte
	if c.CleanSession {
		flags |= 0x02
	}
	if c.WillFlag {
		flags |= 0x04 | c.WillQoS<<3
		if c.WillRetain {
			flags |= 0x20
		}
	}
	if c.HasPassword {
		flags |= 0x40
	}
	if c.HasUsername {
		flags |= 0x80
	}
	n := 2 + len(c.ProtocolName) + 1 + 1 + 2 + 2 + len(c.ClientID)
	if c.WillFlag {
		n += 4 + len(c.WillTopic) + len(c.WillMessage)
	}
	if c.HasUsername {
		n += 2 + len(c.Username)
	}
	if c.HasPassword {
		n += 2 + len(c.Password)
	}
	dst = appendHeader(dst, byte(CONNECT)<<4, n)
	dst = appendString(dst, c.ProtocolName)
	dst = append(dst, c.Level, flags)
	dst = binary.BigEndian.AppendUint16(dst, c.KeepAlive)
	dst = appendString(dst, c.ClientID)
	if c.WillFlag {
		dst = appendString(dst, c.WillTopic)
		dst = appendBinary(dst, c.WillMessage)
	}
	if c.HasUsername {
		dst = appendString(dst, c.Username)
	}
	if c.HasPassword {
		dst = appendBinary(dst, c.Password)
	}
	return dst
}
