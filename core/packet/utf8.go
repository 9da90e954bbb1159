package packet

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalidUTF8 is wrapped by the error of a body that is not valid UTF-8. JSON text
// is UTF-8 (RFC 8259): such a body is refused whole, with StatusInvalidUTF8, in every
// protocol, rather than have its bad bytes replaced with U+FFFD.
var ErrInvalidUTF8 = errors.New("not valid UTF-8")

// CheckUTF8 returns nil when b is valid UTF-8, and otherwise an error wrapping
// ErrInvalidUTF8 that names the offset and the first bad byte.
func CheckUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: byte 0x%02x at offset %d", ErrInvalidUTF8, b[i], i)
		}
		i += size
	}
	return ErrInvalidUTF8 // not reached: utf8.Valid said there is a bad byte
}

// DecodeStatus is the status that refuses a body whose decoding failed with err:
// StatusInvalidUTF8 for invalid UTF-8, otherwise StatusInvalidBody.
func DecodeStatus(err error) Status {
	if errors.Is(err, ErrInvalidUTF8) {
		return StatusInvalidUTF8
	}
	return StatusInvalidBody
}
