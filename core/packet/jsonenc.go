package packet

import (
	"strconv"
	"unicode/utf8"
)

// Hand-written encoders for the two bodies every chat costs: the chat delivered to its
// receivers (cmd 11) and the sender's answer (cmd 12). They write what Marshal writes
// (encoding/json's escaping: HTML characters and U+2028/U+2029 escaped) without
// reflection or a JIT, and report false when a value needs Marshal's general path.

const hexDigits = "0123456789abcdef"

// jsonSafe[b] is true for the ASCII bytes that a JSON string holds as they are
// (encoding/json's escaping: not control characters, '"', '\\', '<', '>' or '&').
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// AppendJSONString appends s as a JSON string escaped as encoding/json escapes it. It
// reports false (and returns dst unchanged) when s is not valid UTF-8: Marshal replaces
// such bytes, and callers fall back to it. One pass: ASCII runs are checked eight bytes
// at a time or with a table and copied whole, other characters are validated as they are
// met.
func AppendJSONString(dst []byte, s string) ([]byte, bool) {
	orig := len(dst)
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			if m := unsafeJSON(load8(s, i)); m == 0 {
				i += 8
				continue
			} else {
				i += firstFlagged(m)
			}
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other control characters and <, >, &
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return dst[:orig], false
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}

// AppendChat appends c as JSON, as Marshal(c) would (same members, order and escaping).
// It reports false, with dst unchanged, when c has extras (Marshal compacts and checks
// them) or a string that is not valid UTF-8: use Marshal then.
func AppendChat(dst []byte, c *Chat) ([]byte, bool) {
	return AppendChatSeq(dst, c, c.Seq)
}

// AppendChatSeq is AppendChat with seq in place of c.Seq: the chat as a receiver gets it,
// without a copy of c.
func AppendChatSeq(dst []byte, c *Chat, seq int64) ([]byte, bool) {
	if len(c.Extras) > 0 {
		return dst, false
	}
	w := objectWriter{buf: append(dst, '{'), ok: true}
	w.str(`"id":`, string(c.ID), true)
	w.str(`"from":`, string(c.From), true)
	w.str(`"to":`, string(c.To), true)
	w.num(`"cmd":`, int64(c.Cmd), false)
	w.num(`"createTime":`, int64(c.CreateTime), true)
	w.num(`"msgType":`, int64(c.MsgType), false)
	w.num(`"chatType":`, int64(c.ChatType), false)
	w.str(`"groupId":`, string(c.GroupID), true)
	w.str(`"content":`, c.Content, false)
	w.num(`"seq":`, seq, true)
	if c.Recalled {
		w.member(`"recalled":`)
		w.buf = append(w.buf, "true"...)
	}
	if !w.ok {
		return dst, false
	}
	return append(w.buf, '}'), true
}

// objectWriter appends the members of a JSON object, with omitempty as encoding/json.
type objectWriter struct {
	buf []byte
	n   int  // members written
	ok  bool // false once a string was not valid UTF-8
}

func (w *objectWriter) member(name string) {
	if w.n > 0 {
		w.buf = append(w.buf, ',')
	}
	w.n++
	w.buf = append(w.buf, name...)
}

func (w *objectWriter) str(name, v string, omitEmpty bool) {
	if !w.ok || omitEmpty && v == "" {
		return
	}
	w.member(name)
	w.buf, w.ok = AppendJSONString(w.buf, v)
}

func (w *objectWriter) num(name string, v int64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	w.member(name)
	w.buf = strconv.AppendInt(w.buf, v, 10)
}

// ChatAck is the data of a cmd 12 answer to an accepted chat (router.Ack's members).
type ChatAck struct {
	ID                     string
	CreateTime, ServerTime int64
	Seq                    int64 // omitted when 0
	To, GroupID            string
	Delivered              int
	Duplicate              bool
}

// chatAckOKHead is the constant start of an accepted chat's answer, up to its data's "{".
var chatAckOKHead = string(appendChatAckHead(nil, StatusOK))

// appendChatAckHead appends the start of a cmd 12 answer with code: its members before
// data's, and data's "{".
func appendChatAckHead(dst []byte, code Status) []byte {
	w := objectWriter{buf: append(dst, '{'), ok: true}
	w.num(`"cmd":`, int64(CmdChatResp), false)
	w.num(`"code":`, int64(code), false)
	w.str(`"msg":`, code.Text(), false) // ASCII constants: always valid
	w.str(`"command":`, CmdChatResp.String(), false)
	w.member(`"data":`)
	return append(w.buf, '{')
}

// AppendChatAck appends the body of a cmd 12 answer with code, the code's default
// message and the ack as data, as Marshal of the equivalent Response would. It reports
// false, with dst unchanged, when a string is not valid UTF-8.
func AppendChatAck(dst []byte, code Status, a ChatAck) ([]byte, bool) {
	var head []byte
	if code == StatusOK {
		head = append(dst, chatAckOKHead...)
	} else {
		head = appendChatAckHead(dst, code)
	}
	d := objectWriter{buf: head, ok: true}
	d.str(`"id":`, a.ID, false)
	d.num(`"createTime":`, a.CreateTime, false)
	d.num(`"serverTime":`, a.ServerTime, false)
	d.num(`"seq":`, a.Seq, true)
	d.str(`"to":`, a.To, true)
	d.str(`"groupId":`, a.GroupID, true)
	d.num(`"delivered":`, int64(a.Delivered), false)
	if a.Duplicate {
		d.member(`"duplicate":`)
		d.buf = append(d.buf, "true"...)
	}
	if !d.ok {
		return dst, false
	}
	return append(d.buf, '}', '}'), true
}
