package transport

import (
	"bytes"

	"github.com/timgw/timgw/core/codec"
)

// kind is what the first bytes of a connection say it speaks.
type kind int

const (
	kindMore    kind = iota // not enough bytes yet
	kindUnknown             // nothing timgw speaks
	kindTCP                 // t-im TCP: cmd 1..20, 4-byte length, '{'
	kindHTTP                // an HTTP request that is not a WebSocket upgrade
	kindWS                  // an HTTP GET asking to upgrade to WebSocket
	kindTLS                 // a TLS record (0x16 handshake)
	kindExt                 // a configured codec.Protocol (plugin)
)

func (k kind) String() string {
	return [...]string{"more", "unknown", "tcp", "http", "ws", "tls", "ext"}[k]
}

// maxSniff bounds how many bytes sniffing looks at (an HTTP request head).
const maxSniff = 8 << 10

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("DELETE "), []byte("HEAD "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE "),
}

// sniffAll classifies the first bytes of a connection: built-in protocols first, then
// the configured ones in order.
func sniffAll(b []byte, protos []codec.Protocol) (kind, codec.Protocol) {
	k := sniff(b)
	if k != kindUnknown || len(protos) == 0 {
		return k, nil
	}
	more := false
	for _, p := range protos {
		switch p.Recognize(b) {
		case codec.Matched:
			return kindExt, p
		case codec.NeedMore:
			more = true
		}
	}
	if more {
		return kindMore, nil
	}
	return kindUnknown, nil
}

// sniff classifies the first bytes of a connection among the built-in protocols.
func sniff(b []byte) kind {
	if len(b) == 0 {
		return kindMore
	}
	switch c := b[0]; {
	case c == 0x16:
		return kindTLS
	case c >= 1 && c <= 20:
		if len(b) < 6 {
			return kindMore
		}
		if b[5] == '{' {
			return kindTCP
		}
		return kindUnknown
	case c >= 'A' && c <= 'Z':
		return sniffHTTP(b)
	}
	return kindUnknown
}

func sniffHTTP(b []byte) kind {
	isGet := false
	matched := false
	for _, m := range httpMethods {
		n := min(len(m), len(b))
		if bytes.Equal(b[:n], m[:n]) {
			if n < len(m) {
				return kindMore
			}
			matched, isGet = true, m[0] == 'G'
			break
		}
	}
	if !matched {
		return kindUnknown
	}
	if !isGet {
		return kindHTTP
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) >= maxSniff {
			return kindHTTP // let the HTTP server answer the oversized head
		}
		return kindMore
	}
	if isUpgrade(b[:end]) {
		return kindWS
	}
	return kindHTTP
}

// isUpgrade reports whether a request head has "Upgrade: websocket".
func isUpgrade(head []byte) bool {
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Upgrade")) &&
			bytes.Contains(bytes.ToLower(v), []byte("websocket")) {
			return true
		}
	}
	return false
}
