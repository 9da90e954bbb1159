package packet

import (
	"math/rand/v2"
	"testing"
)

// TestWordScan: unsafeJSON and stringStops find exactly the first byte of a word that the
// byte-at-a-time rules flag (jsonSafe; '"', '\\' and control characters), for every
// byte value at every position over plain filler and over random words.
func TestWordScan(t *testing.T) {
	naive := func(b []byte, flag func(byte) bool) int {
		for i, c := range b {
			if flag(c) {
				return i
			}
		}
		return -1
	}
	notSafe := func(c byte) bool { return c >= 0x80 || !jsonSafe[c] }
	stop := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' }
	check := func(b []byte) {
		t.Helper()
		w := load8(b, 0)
		if w != load8(string(b), 0) {
			t.Fatalf("load8 differs for string and bytes: %q", b)
		}
		for _, tc := range []struct {
			name string
			mask uint64
			flag func(byte) bool
		}{{"unsafeJSON", unsafeJSON(w), notSafe}, {"stringStops", stringStops(w), stop}} {
			got := -1
			if tc.mask != 0 {
				got = firstFlagged(tc.mask)
			}
			if want := naive(b, tc.flag); got != want {
				t.Fatalf("%s(%q): first flagged byte %d, want %d", tc.name, b, got, want)
			}
		}
	}
	for pos := range 8 {
		for v := range 256 {
			b := []byte("abcdefgh")
			b[pos] = byte(v)
			check(b)
			for i := pos + 1; i < 8; i++ { // a flagged byte after it must not hide it
				b[i] = 0
			}
			check(b)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var b [8]byte
		for i := range b {
			b[i] = byte(r.Uint32())
			if r.IntN(2) == 0 {
				b[i] = 'a' + byte(r.IntN(26)) // mostly plain words too
			}
		}
		check(b[:])
	}
}
