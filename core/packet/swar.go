package packet

import "math/bits"

// Word-at-a-time scanning of strings for the chat encoder and decoder: a chat's content
// is mostly plain text, which they can step over eight bytes at a time.

const (
	lsbs = 0x0101010101010101 // the lowest bit of every byte
	msbs = 0x8080808080808080 // the highest bit of every byte
)

// load8 reads the eight bytes of s at i as a little-endian word; i+8 <= len(s).
func load8[T string | []byte](s T, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// below is non-zero when a byte of w is below n (n <= 0x80).
func below(w uint64, n byte) uint64 { return (w - lsbs*uint64(n)) &^ w & msbs }

// equal is non-zero when a byte of w is b.
func equal(w uint64, b byte) uint64 { return below(w^(lsbs*uint64(b)), 1) }

// A mask below flags bytes of a word with their highest bit. Borrows make it inexact only
// above the first flagged byte: whether a mask is 0, and its lowest flagged byte
// (firstFlagged), are exact.

// unsafeJSON flags the bytes of w that are not jsonSafe.
func unsafeJSON(w uint64) uint64 {
	return w&msbs | below(w, 0x20) | equal(w, '"') | equal(w, '\\') | equal(w, '<') | equal(w, '>') | equal(w, '&')
}

// stringStops flags the bytes of w that end or escape a JSON string or are control
// characters (which a JSON string cannot hold).
func stringStops(w uint64) uint64 {
	return below(w, 0x20) | equal(w, '"') | equal(w, '\\')
}

// firstFlagged is the index of the lowest byte flagged in mask (mask != 0).
func firstFlagged(mask uint64) int { return bits.TrailingZeros64(mask) / 8 }
