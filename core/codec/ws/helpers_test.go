package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unsafe"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// sampleKey and sampleAccept are the nonce and answer of RFC 6455 section 1.3.
const (
	sampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// testMask is the fixed mask of the test frames, so that streams are reproducible.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// upgradeReq is a valid upgrade request for target (a path with an optional query).
func upgradeReq(target string) []byte {
	return []byte("GET " + target + " HTTP/1.1\r\n" +
		"Host: im.example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + sampleKey + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Origin: http://im.example.com\r\n\r\n")
}

// clientFrame is a masked client frame, built with gobwas/ws.
func clientFrame(op ws.OpCode, fin bool, payload string) []byte {
	f := ws.MaskFrameWith(ws.NewFrame(op, fin, []byte(payload)), testMask)
	var b bytes.Buffer
	ws.MustWriteFrame(&b, f)
	return b.Bytes()
}

// text is a whole masked text frame.
func text(payload string) []byte { return clientFrame(ws.OpText, true, payload) }

// unmaskedFrame is a frame a client must not send: no mask.
func unmaskedFrame(op ws.OpCode, payload string) []byte {
	return ws.MustCompileFrame(ws.NewFrame(op, true, []byte(payload)))
}

// rawFrame is a masked frame with arbitrary header bits.
func rawFrame(h ws.Header, payload string) []byte {
	f := ws.MaskFrameWith(ws.Frame{Header: h, Payload: []byte(payload)}, testMask)
	f.Header.Length = int64(len(payload))
	var b bytes.Buffer
	ws.MustWriteFrame(&b, f)
	return b.Bytes()
}

// headerOnly is a masked frame header that declares n payload bytes, without them.
func headerOnly(op ws.OpCode, fin bool, n int64) []byte {
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, ws.Header{Fin: fin, OpCode: op, Length: n, Masked: true, Mask: testMask}); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// result is everything a connection's Decode calls produced.
type result struct {
	packets []packet.Packet
	reply   []byte
	close   bool
	err     error
	rest    int // bytes left unconsumed at the end
}

// feed plays the transport: it delivers stream in chunks of chunk bytes (all of it when
// chunk <= 0), calls Decode with all unconsumed bytes after each, and checks the contract
// invariants on every call.
func feed(t testing.TB, c *Codec, stream []byte, chunk int) result {
	t.Helper()
	if chunk <= 0 {
		chunk = len(stream)
	}
	var (
		r   result
		buf []byte
		out codec.Decoded
	)
	chunks := [][]byte{stream}
	if chunk < len(stream) {
		chunks = nil
		for i := 0; i < len(stream); i += chunk {
			chunks = append(chunks, stream[i:min(i+chunk, len(stream))])
		}
	}
	for _, ch := range chunks {
		buf = append(buf, ch...)
		out.Reset()
		n, err := c.Decode(buf, &out)
		if n < 0 || n > len(buf) {
			t.Fatalf("Decode consumed %d of %d bytes", n, len(buf))
		}
		for _, p := range out.Packets {
			if overlaps(p.Body, buf) {
				t.Fatalf("packet body %q aliases the input", p.Body)
			}
		}
		if overlaps(out.Reply, buf) {
			t.Fatalf("reply aliases the input")
		}
		r.packets = append(r.packets, out.Packets...)
		r.reply = append(r.reply, out.Reply...)
		r.close = r.close || out.Close
		// Scribble over the consumed bytes, as the transport reuses its buffer.
		for j := range buf[:n] {
			buf[j] = 0xee
		}
		buf = buf[n:]
		if err != nil {
			r.err = err
			break
		}
		if out.Close {
			break
		}
	}
	r.rest = len(buf)
	return r
}

// overlaps reports whether a and b share memory.
func overlaps(a, b []byte) bool {
	if cap(a) == 0 || cap(b) == 0 {
		return false
	}
	a0 := uintptr(unsafe.Pointer(unsafe.SliceData(a[:cap(a)])))
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b[:cap(b)])))
	return a0 < b0+uintptr(cap(b)) && b0 < a0+uintptr(cap(a))
}

// serverFrame is a frame read back from the codec's output.
type serverFrame struct {
	h       ws.Header
	payload []byte
}

// splitReply separates the HTTP response at the front of a reply, if any, from the
// WebSocket frames after it, which it parses with gobwas/ws.
func splitReply(t testing.TB, reply []byte) (httpResp string, frames []serverFrame) {
	t.Helper()
	if bytes.HasPrefix(reply, []byte("HTTP/")) {
		i := bytes.Index(reply, []byte("\r\n\r\n"))
		if i < 0 {
			t.Fatalf("unterminated HTTP response %q", reply)
		}
		httpResp = string(reply[:i+4])
		reply = reply[i+4:]
		// An error response carries a Content-Length body.
		if !strings.HasPrefix(httpResp, "HTTP/1.1 101") {
			return httpResp + string(reply), nil
		}
	}
	frames, err := readFrames(reply)
	if err != nil {
		t.Fatalf("reply frames: %v (reply %q)", err, reply)
	}
	return httpResp, frames
}

// readFrames parses server frames with gobwas/ws and checks they are unmasked and final.
func readFrames(b []byte) ([]serverFrame, error) {
	var frames []serverFrame
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return nil, err
		}
		if h.Masked || !h.Fin || h.Rsv != 0 {
			return nil, fmt.Errorf("bad server frame header %+v", h)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return nil, err
		}
		frames = append(frames, serverFrame{h: h, payload: p})
	}
	return frames, nil
}

// describe renders server frames compactly: "text:<code>" for a JSON response (its code),
// "text:<payload>" for other text, "pong:<payload>", "close:<status>".
func describe(frames []serverFrame) []string {
	var d []string
	for _, f := range frames {
		switch f.h.OpCode {
		case ws.OpText:
			var resp struct {
				Code packet.Status `json:"code"`
			}
			if json.Unmarshal(f.payload, &resp) == nil && resp.Code != 0 {
				d = append(d, fmt.Sprintf("text:%d", resp.Code))
			} else {
				d = append(d, "text:"+string(f.payload))
			}
		case ws.OpPong:
			d = append(d, "pong:"+string(f.payload))
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.payload)
			d = append(d, fmt.Sprintf("close:%d", code))
		default:
			d = append(d, fmt.Sprintf("op%d:%s", f.h.OpCode, f.payload))
		}
	}
	return d
}

// errStatus is the packet.Status of a *codec.Error, errPlain for another error, 0 for nil.
func errStatus(err error) packet.Status {
	var ce *codec.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		return ce.Status
	default:
		return errPlain
	}
}

// errPlain stands for an error that is not a *codec.Error.
const errPlain packet.Status = -1
