package storagebolt

import (
	"bytes"
	"testing"
)

func TestKeys(t *testing.T) {
	k := msgKey("p:1:ab", 42)
	conv, seq, err := parseMsgKey(k)
	if err != nil || conv != "p:1:ab" || seq != 42 {
		t.Fatalf("parseMsgKey(msgKey) = %q, %d, %v", conv, seq, err)
	}
	if !bytes.HasPrefix(k, strKey("p:1:ab")) || bytes.HasPrefix(k, strKey("p:1:a")) {
		t.Errorf("message key prefixes")
	}
	for _, bad := range [][]byte{nil, {0x05, 'a'}, append(strKey("c"), 1, 2, 3), append(strKey("c"), make([]byte, 8)...)} {
		if _, _, err := parseMsgKey(bad); err == nil {
			t.Errorf("parseMsgKey(%x) accepted", bad)
		}
	}
	a, rest, err := readStr(pairKey("g", "m"))
	b, rest2, err2 := readStr(rest)
	if err != nil || err2 != nil || a != "g" || b != "m" || len(rest2) != 0 {
		t.Errorf("pairKey round trip: %q %q %v %v", a, b, err, err2)
	}
}

// FuzzParseMsgKey feeds arbitrary bytes (a damaged file) to the key decoders: they must
// fail cleanly, and what they accept must encode back to the same bytes.
func FuzzParseMsgKey(f *testing.F) {
	f.Add(msgKey("p:1:ab", 1))
	f.Add(msgKey("", 7))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, k []byte) {
		if conv, seq, err := parseMsgKey(k); err == nil && !bytes.Equal(msgKey(conv, seq), k) {
			t.Fatalf("parseMsgKey(%x) = %q, %d: does not encode back", k, conv, seq)
		}
		if s, rest, err := readStr(k); err == nil && !bytes.Equal(append(strKey(s), rest...), k) {
			t.Fatalf("readStr(%x) = %q, %x: does not encode back", k, s, rest)
		}
	})
}
