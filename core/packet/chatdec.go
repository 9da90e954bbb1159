package packet

import (
	"unicode/utf8"
	"unsafe"
)

// A hand-written decoder for the body every chat costs: cmd 11 as a client sends it. It
// reads the common shape of a chat (the members of Chat with plain values) in one pass,
// without reflection, and makes one string allocation for all the strings it keeps. It
// does not decide anything on its own: whatever it does not read exactly as the general
// decoder (sonic, with Int's and Str's lenient UnmarshalJSON) would, it declines, and
// Unmarshal falls back to that decoder. Declined are: a member name that is not exactly
// one of Chat's (Unmarshal matches names case-insensitively), an escaped member name,
// null, extras, a string with a \u escape of a surrogate, a number or string where the
// member's type does not take it, and anything that is not valid JSON.

// decodeChatFast decodes body into c when it can and reports whether it did; when it
// reports false, c is unchanged. body must be valid UTF-8 (Unmarshal checks it first).
func decodeChatFast(body []byte, c *Chat) bool { return decodeChat(body, c, false) }

// decodeChat is decodeChatFast; with owned, the strings it keeps are sliced out of body
// itself rather than a copy of it (DecodeChatOwned).
func decodeChat(body []byte, c *Chat, owned bool) bool {
	d := chatDecoder{b: body}
	var m Chat
	// Strings are sliced out of one copy of the body: one allocation for all of them, or
	// none when the body is the caller's to give.
	var text string
	if owned && len(body) > 0 {
		text = unsafe.String(unsafe.SliceData(body), len(body))
	}
	d.skipSpace()
	if !d.byte('{') {
		return false
	}
	d.skipSpace()
	if d.peek() == '}' {
		d.i++
	} else {
		for {
			name, ok := d.name()
			if !ok {
				return false
			}
			d.skipSpace()
			if !d.byte(':') {
				return false
			}
			d.skipSpace()
			switch name {
			case "id", "from", "to", "groupId", "content":
				start, end, esc, ok := d.scalar()
				if !ok {
					return false
				}
				var s string
				switch {
				case body[start] == '"' && !esc:
					if text == "" {
						text = string(body)
					}
					s = text[start+1 : end-1]
				case body[start] == '"':
					if s, ok = unescape(body[start+1 : end-1]); !ok {
						return false
					}
				case name == "content": // a plain string member: a number is a type error
					return false
				default: // Str takes a number as its text
					if text == "" {
						text = string(body)
					}
					s = text[start:end]
				}
				switch name {
				case "id":
					m.ID = Str(s)
				case "from":
					m.From = Str(s)
				case "to":
					m.To = Str(s)
				case "groupId":
					m.GroupID = Str(s)
				default:
					m.Content = s
				}
			case "cmd", "createTime", "msgType", "chatType":
				start, end, esc, ok := d.scalar()
				if !ok || esc {
					return false
				}
				var n Int
				if v, ok := plainInt(body[start:end]); ok {
					n = Int(v)
				} else if n.UnmarshalJSON(body[start:end]) != nil {
					return false
				}
				switch name {
				case "cmd":
					m.Cmd = n
				case "createTime":
					m.CreateTime = n
				case "msgType":
					m.MsgType = n
				default:
					m.ChatType = n
				}
			case "seq":
				start, end, _, ok := d.scalar()
				if !ok {
					return false
				}
				v, ok := plainInt(body[start:end])
				if !ok {
					return false
				}
				m.Seq = v
			case "recalled":
				switch {
				case d.literal("true"):
					m.Recalled = true
				case d.literal("false"):
					m.Recalled = false
				default:
					return false
				}
			default:
				return false
			}
			d.skipSpace()
			if d.byte(',') {
				d.skipSpace()
				continue
			}
			if d.byte('}') {
				break
			}
			return false
		}
	}
	d.skipSpace()
	if d.i != len(body) {
		return false
	}
	*c = m
	return true
}

// chatDecoder reads JSON tokens from b at i.
type chatDecoder struct {
	b []byte
	i int
}

func (d *chatDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

func (d *chatDecoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// byte consumes c when it is next.
func (d *chatDecoder) byte(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// literal consumes s when it is next.
func (d *chatDecoder) literal(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

// name reads a member name without escapes. The string it returns aliases b: it is only
// compared, never kept.
func (d *chatDecoder) name() (string, bool) {
	start, end, esc, ok := d.str()
	if !ok || esc {
		return "", false
	}
	if end-start == 2 {
		return "", true
	}
	return unsafe.String(&d.b[start+1], end-start-2), true
}

// scalar reads a string or a number and returns its span (quotes included) and whether
// a string has escapes.
func (d *chatDecoder) scalar() (start, end int, esc, ok bool) {
	switch c := d.peek(); {
	case c == '"':
		return d.str()
	case c == '-' || c >= '0' && c <= '9':
		start = d.i
		if !d.number() {
			return 0, 0, false, false
		}
		return start, d.i, false, true
	}
	return 0, 0, false, false
}

// str reads a JSON string. Control characters are invalid in one; escapes are checked
// by unescape.
func (d *chatDecoder) str() (start, end int, esc, ok bool) {
	start = d.i
	if !d.byte('"') {
		return 0, 0, false, false
	}
	for d.i < len(d.b) {
		if d.i+8 <= len(d.b) {
			if m := stringStops(load8(d.b, d.i)); m == 0 {
				d.i += 8
				continue
			} else {
				d.i += firstFlagged(m)
			}
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return start, d.i, esc, true
		case c == '\\':
			esc = true
			d.i += 2 // the escaped character; unescape validates it
		case c < 0x20:
			return 0, 0, false, false
		default:
			d.i++
		}
	}
	return 0, 0, false, false
}

// number reads a JSON number (RFC 8259 grammar).
func (d *chatDecoder) number() bool {
	d.byte('-')
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return false
	}
	if d.byte('.') && !d.digits() {
		return false
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !d.digits() {
			return false
		}
	}
	return true
}

// digits reads one or more decimal digits.
func (d *chatDecoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// plainInt parses an integer literal of at most 18 digits (no overflow possible), as
// Int's UnmarshalJSON and the int64 decoder read it.
func plainInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// unescape decodes the inside of a JSON string that has escapes. It declines a \u
// escape of a surrogate (a pair, or a lone one that decoders replace) and any invalid
// escape.
func unescape(s []byte) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		switch s[i+1] {
		case '"', '\\', '/':
			out = append(out, s[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(s) {
				return "", false
			}
			var r rune
			for _, h := range s[i+2 : i+6] {
				switch {
				case h >= '0' && h <= '9':
					r = r<<4 | rune(h-'0')
				case h >= 'a' && h <= 'f':
					r = r<<4 | rune(h-'a'+10)
				case h >= 'A' && h <= 'F':
					r = r<<4 | rune(h-'A'+10)
				default:
					return "", false
				}
			}
			if r >= 0xD800 && r <= 0xDFFF {
				return "", false
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			return "", false
		}
		i += 2
	}
	return string(out), true
}
