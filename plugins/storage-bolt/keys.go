package storagebolt

import (
	"encoding/binary"
	"errors"
)

// Keys are built from length-prefixed strings (a uvarint length, then the bytes) and
// big-endian integers, so that every key of one string shares a prefix no other string's
// keys have, and integers sort numerically.

// errKey reports a key or value that is not what this plugin writes (a damaged file).
var errKey = errors.New("storage-bolt: malformed key")

// appendStr appends s, length-prefixed.
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendU64 appends v, big-endian.
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// readStr reads a length-prefixed string from the front of b.
func readStr(b []byte) (s string, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) || k != len(binary.AppendUvarint(nil, n)) { // canonical only
		return "", nil, errKey
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

// readU64 reads an 8-byte big-endian integer that must be all of b.
func readU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, errKey
	}
	return binary.BigEndian.Uint64(b), nil
}

// msgKey is the key of message seq of conversation conv.
func msgKey(conv string, seq int64) []byte {
	return appendU64(appendStr(make([]byte, 0, len(conv)+10), conv), uint64(seq))
}

// parseMsgKey splits a message key.
func parseMsgKey(k []byte) (conv string, seq int64, err error) {
	conv, rest, err := readStr(k)
	if err != nil {
		return "", 0, err
	}
	v, err := readU64(rest)
	if err != nil || v == 0 || v > 1<<62 {
		return "", 0, errKey
	}
	return conv, int64(v), nil
}

// strKey is one length-prefixed string; the prefix of every key that starts with it.
func strKey(s string) []byte { return appendStr(make([]byte, 0, len(s)+2), s) }

// pairKey is two length-prefixed strings.
func pairKey(a, b string) []byte {
	return appendStr(appendStr(make([]byte, 0, len(a)+len(b)+4), a), b)
}

// inboxKey is the key of entry cursor of user's inbox.
func inboxKey(user string, cursor int64) []byte {
	return appendU64(strKey(user), uint64(cursor))
}
