// Package ws is the codec of t-im's WebSocket protocol (docs/protocol.md section 1): an HTTP/1.1
// upgrade request, then one JSON object per text (or binary) frame, carrying its command in
// the body's "cmd" member.
//
// The upgrade handshake and frame headers are handled by github.com/gobwas/ws; this package
// adds the incremental buffering the transport needs, the t-im specifics (query-parameter
// login, numeric-string commands, in-band error replies for unreadable bodies) and the
// limits of codec.Options.
package ws

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
)

// MaxHeaderBytes bounds the HTTP upgrade request: its whole header block, request line and
// the blank line included. A longer request is answered with HTTP 431 and a
// *codec.Error of status packet.StatusTooLarge.
const MaxHeaderBytes = 8 << 10

// DefaultMaxFrame is the message size limit used when codec.Options.MaxFrame is not
// positive. A WebSocket frame declares a length of up to 2^63-1 bytes, so this codec never
// runs without a limit.
const DefaultMaxFrame = 1 << 20

// maxErrorMsg bounds the message of an in-band error reply, so that a huge bad "cmd"
// value is not echoed back whole.
const maxErrorMsg = 200

// maxCloseReason is the room for a reason in a close frame: the 125-byte control payload
// minus the 2-byte status code.
const maxCloseReason = ws.MaxControlFramePayloadSize - 2

// Fixed HTTP answers for requests that gobwas/ws does not answer itself.
const (
	httpBadRequest = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\n\r\n" +
		"malformed HTTP request\r\n"
	httpHeaderTooLarge = "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n" +
		"Content-Length: 0\r\n\r\n"
)

var headerEnd = []byte("\r\n\r\n")

// ErrFailed is returned by Decode when it is called again after it reported an error: the
// stream position is lost and nothing more can be read from the connection.
var ErrFailed = errors.New("websocket: codec already failed on this connection")

// phase is where a connection is in its life.
type phase uint8

const (
	phaseHandshake phase = iota // waiting for the upgrade request
	phaseOpen                   // upgraded, reading frames
	phaseClosed                 // the peer sent a close frame; later bytes are ignored
	phaseFailed                 // Decode returned an error
)

// Codec frames one WebSocket connection, server side. It is stateful (upgrade done or not,
// a fragmented message in progress, close frames seen and sent). Decode calls must not
// overlap; Encode, Goodbye and GoodbyeCode share only atomic state with Decode, so a
// transport may call them from another goroutine (a push, a kick) while Decode runs.
type Codec struct {
	// Fields are ordered to fit the 48-byte size class: one Codec lives per connection.
	maxFrame int
	frag     []byte // unmasked payload of a fragmented message in progress

	upgraded  atomic.Bool   // set once the 101 response is produced; read by Encode
	closeSent atomic.Bool   // a close frame was produced (echo or goodbye): nothing may follow
	closeCode atomic.Uint32 // ws.StatusCode for Goodbye, set by the error Decode reported

	scanned uint16 // bytes of the pending request already searched for "\r\n\r\n" (< MaxHeaderBytes)
	phase   phase
	fragged bool // a fragmented message is in progress
}

var (
	_ codec.Codec    = (*Codec)(nil)
	_ codec.Goodbyer = (*Codec)(nil)
)

// scratch is what ws.ReadHeaderBuffer needs while Decode reads frame headers. It is
// pooled rather than kept in Codec: a Codec lives as long as its connection, and memory
// per idle connection matters.
type scratch struct {
	rd   bytes.Reader               // reader over the input
	hbuf [ws.MaxHeaderSize - 2]byte // header buffer
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// New returns a WebSocket codec for one new connection, which first expects the HTTP
// upgrade request. Messages (whole or reassembled from fragments) over opts.MaxFrame bytes
// are refused; a non-positive MaxFrame means DefaultMaxFrame.
func New(opts codec.Options) *Codec {
	m := opts.MaxFrame
	if m <= 0 {
		m = DefaultMaxFrame
	}
	return &Codec{maxFrame: m}
}

// Upgraded reports whether the upgrade handshake completed. The transport may use it to
// bound the time a connection spends before it.
func (c *Codec) Upgraded() bool { return c.upgraded.Load() }

// Partial reports whether a fragmented message is in progress: its frames so far were
// consumed, but the message is not complete. Call it only where Decode is called (the
// connection's reader), after Decode.
func (c *Codec) Partial() bool { return c.fragged }

// Decode implements codec.Codec. Before the upgrade it waits for the whole request header
// block, answers it in out.Reply (101, or an HTTP error together with a returned error)
// and, for a request with login query parameters, emits a synthetic login packet. After
// it, it reads whole frames: data frames become packets, pings are answered in out.Reply,
// a close frame is echoed in out.Reply and sets out.Close.
func (c *Codec) Decode(in []byte, out *codec.Decoded) (int, error) {
	consumed := 0
	switch c.phase {
	case phaseHandshake:
		n, err := c.upgrade(in, out)
		if err != nil || n == 0 {
			return n, err
		}
		consumed = n
	case phaseClosed:
		// RFC 6455 section 5.5.1: after a close frame the peer sends no data; ignore any.
		return len(in), nil
	case phaseFailed:
		return len(in), ErrFailed
	}
	n, err := c.frames(in[consumed:], out)
	if err != nil {
		c.phase = phaseFailed
	}
	return consumed + n, err
}

// upgrade handles the HTTP upgrade request at the front of in.
func (c *Codec) upgrade(in []byte, out *codec.Decoded) (int, error) {
	window := in[:min(len(in), MaxHeaderBytes)]
	from := int(c.scanned)
	if from > len(window) {
		from = 0 // the caller changed the buffer; search it all again
	}
	i := bytes.Index(window[from:], headerEnd)
	if i < 0 {
		if len(in) >= MaxHeaderBytes {
			c.phase = phaseFailed
			out.Reply = append(out.Reply, httpHeaderTooLarge...)
			return 0, &codec.Error{Cmd: packet.CmdError, Status: packet.StatusTooLarge,
				Msg: fmt.Sprintf("websocket upgrade request header exceeds %d bytes", MaxHeaderBytes)}
		}
		c.scanned = uint16(max(0, len(window)-len(headerEnd)+1))
		return 0, nil
	}
	end := from + i + len(headerEnd)

	var (
		login []byte
		resp  = appendWriter{dst: &out.Reply}
		mark  = len(out.Reply)
	)
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			login = queryLogin(uri)
			return nil
		},
	}
	_, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(in[:end]), resp})
	if err != nil {
		c.phase = phaseFailed
		if len(out.Reply) == mark {
			// gobwas/ws answers a bad request itself, except when the request line or a
			// header line cannot be read at all.
			out.Reply = append(out.Reply, httpBadRequest...)
		}
		return end, fmt.Errorf("websocket upgrade: %w", err)
	}
	c.phase = phaseOpen
	c.upgraded.Store(true)
	if login != nil {
		out.Packets = append(out.Packets, packet.Packet{Cmd: packet.CmdLoginReq, Body: login})
	}
	return end, nil
}

// queryLogin returns the body of the login packet that the request URI's query asks for
// (t-im's ws://host/?username=alice&password=x), or nil when it names no user and no token.
func queryLogin(uri []byte) []byte {
	q := uri
	if i := bytes.IndexByte(q, '?'); i >= 0 {
		q = q[i+1:]
	} else {
		return nil
	}
	if i := bytes.IndexByte(q, '#'); i >= 0 {
		q = q[:i]
	}
	// A malformed pair is skipped; ParseQuery still returns the pairs it could read.
	v, _ := url.ParseQuery(string(q))
	user := v.Get("userId")
	if user == "" {
		user = v.Get("userid")
	}
	if user == "" {
		user = v.Get("username")
	}
	token := v.Get("token")
	if user == "" && token == "" {
		return nil
	}
	b, err := json.Marshal(struct {
		Cmd      packet.Cmd `json:"cmd"`
		UserID   string     `json:"userId"`
		Password string     `json:"password"`
		Token    string     `json:"token"`
	}{packet.CmdLoginReq, user, v.Get("password"), token})
	if err != nil {
		return nil // strings always marshal
	}
	return b
}

// appendWriter is an io.Writer that appends to a byte slice.
type appendWriter struct{ dst *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.dst = append(*w.dst, p...)
	return len(p), nil
}

// frames reads the whole frames at the front of in.
func (c *Codec) frames(in []byte, out *codec.Decoded) (int, error) {
	if c.phase != phaseOpen || len(in) < ws.MinHeaderSize {
		return 0, nil
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		sc.rd.Reset(nil)
		scratchPool.Put(sc)
	}()
	consumed := 0
	for c.phase == phaseOpen && len(in)-consumed >= ws.MinHeaderSize {
		rest := in[consumed:]
		sc.rd.Reset(rest)
		h, err := ws.ReadHeaderBuffer(&sc.rd, sc.hbuf[:])
		if err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				break // partial header
			}
			return consumed, c.fail(ws.StatusProtocolError, packet.StatusMalformedFrame,
				"websocket frame header: %v", err)
		}
		hlen := len(rest) - sc.rd.Len()

		state := ws.StateServerSide
		if c.fragged {
			state = state.Set(ws.StateFragmented)
		}
		if err := ws.CheckHeader(h, state); err != nil {
			return consumed, c.fail(ws.StatusProtocolError, packet.StatusMalformedFrame,
				"websocket frame %s: %v", opName(h.OpCode), err)
		}
		if !h.OpCode.IsControl() {
			total := uint64(h.Length)
			if c.fragged {
				total += uint64(len(c.frag))
			}
			if total > uint64(c.maxFrame) {
				if c.fragged || !h.Fin {
					return consumed, c.fail(ws.StatusMessageTooBig, packet.StatusTooLarge,
						"fragmented websocket message reaches %d bytes, over the limit of %d bytes",
						total, c.maxFrame)
				}
				return consumed, c.fail(ws.StatusMessageTooBig, packet.StatusTooLarge,
					"websocket message of %d bytes exceeds the limit of %d bytes", total, c.maxFrame)
			}
		}
		if uint64(len(rest)-hlen) < uint64(h.Length) {
			break // partial payload
		}
		payload := rest[hlen : hlen+int(h.Length)]
		consumed += hlen + len(payload)

		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if !h.Fin {
				c.fragged = true
				c.frag = appendUnmasked(c.frag[:0], payload, h.Mask)
				continue
			}
			body := make([]byte, len(payload))
			copy(body, payload)
			ws.Cipher(body, h.Mask, 0)
			c.message(body, out)
		case ws.OpContinuation:
			c.frag = appendUnmasked(c.frag, payload, h.Mask)
			if h.Fin {
				body := c.frag
				c.frag, c.fragged = nil, false
				c.message(body, out)
			}
		case ws.OpPing:
			var p [ws.MaxControlFramePayloadSize]byte
			n := copy(p[:], payload)
			ws.Cipher(p[:n], h.Mask, 0)
			out.Reply = appendFrame(out.Reply, ws.OpPong, p[:n])
		case ws.OpPong:
			// Unsolicited pongs are allowed and need no answer.
		case ws.OpClose:
			var p [ws.MaxControlFramePayloadSize]byte
			n := copy(p[:], payload)
			ws.Cipher(p[:n], h.Mask, 0)
			out.Reply = c.appendClose(out.Reply, closeEcho(p[:n]), "")
			out.Close = true
			c.phase = phaseClosed
			c.frag, c.fragged = nil, false
		}
	}
	return consumed, nil
}

// message turns one complete, unmasked message into a packet, or answers it in out.Reply
// with an invalid-body error when it is not a JSON object with a usable "cmd".
func (c *Codec) message(body []byte, out *codec.Decoded) {
	cmd, err := packet.PeekCmd(body)
	if err != nil {
		msg := truncate("websocket message: "+err.Error(), maxErrorMsg)
		p := packet.ErrorPacket(packet.CmdError, packet.StatusInvalidBody, msg)
		out.Reply = appendFrame(out.Reply, ws.OpText, p.Body)
		return
	}
	out.Packets = append(out.Packets, packet.Packet{Cmd: cmd, Body: body})
}

// closeEcho returns the status to answer a peer's close frame payload with: the peer's own
// status when it is valid, 1000 when it gave none, 1002 when the payload is malformed.
func closeEcho(p []byte) ws.StatusCode {
	switch {
	case len(p) == 0:
		return ws.StatusNormalClosure
	case len(p) == 1:
		return ws.StatusProtocolError
	}
	code, reason := ws.ParseCloseFrameDataUnsafe(p)
	if ws.CheckCloseFrameData(code, reason) != nil {
		return ws.StatusProtocolError
	}
	return code
}

// fail records the close status that Goodbye will send and returns the protocol error.
func (c *Codec) fail(code ws.StatusCode, status packet.Status, format string, args ...any) error {
	c.closeCode.Store(uint32(code))
	return &codec.Error{Cmd: packet.CmdError, Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Encode implements codec.Codec: an unmasked, final text frame whose payload is p.Body
// (outbound bodies already carry "cmd"). Before the upgrade completes the peer does not
// speak WebSocket yet, and Encode returns dst unchanged.
func (c *Codec) Encode(dst []byte, p packet.Packet) []byte {
	if !c.upgraded.Load() {
		return dst
	}
	return appendFrame(dst, ws.OpText, p.Body)
}

// Goodbye implements codec.Goodbyer: a close frame with reason (cut to 123 bytes on a
// UTF-8 boundary). Its status is 1002 after a malformed frame, 1009 after an oversize
// message, and 1000 otherwise. It returns dst unchanged before the upgrade and once a
// close frame was already produced (an echo in Decode or an earlier Goodbye).
func (c *Codec) Goodbye(dst []byte, reason string) []byte {
	code := ws.StatusCode(c.closeCode.Load())
	if code == 0 {
		code = ws.StatusNormalClosure
	}
	return c.GoodbyeCode(dst, code, reason)
}

// GoodbyeCode is Goodbye with an explicit close status, for a transport that knows better
// why it closes: ws.StatusPolicyViolation (1008) for a rejected or kicked client,
// ws.StatusGoingAway (1001) on shutdown.
func (c *Codec) GoodbyeCode(dst []byte, code ws.StatusCode, reason string) []byte {
	if !c.upgraded.Load() {
		return dst
	}
	return c.appendClose(dst, code, reason)
}

// appendClose appends a close frame, unless one was already produced.
func (c *Codec) appendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if !c.closeSent.CompareAndSwap(false, true) {
		return dst
	}
	reason = truncate(strings.ToValidUTF8(reason, "\uFFFD"), maxCloseReason)
	var p [ws.MaxControlFramePayloadSize]byte
	ws.PutCloseFrameBody(p[:], code, reason)
	return appendFrame(dst, ws.OpClose, p[:2+len(reason)])
}

// appendFrame appends an unmasked, final server frame.
//
// The header is written here rather than with ws.WriteHeaderBuffer: that one takes an
// io.Writer, which on this hot path costs an allocation per frame (or shared mutable
// state, which Encode must not have), and a server header is only the 2, 4 or 10 bytes of
// RFC 6455 section 5.2. Tests check the output with ws.ReadHeader.
func appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	dst = slices.Grow(dst, n+10)
	b0 := 0x80 | byte(op)
	switch {
	case n <= 125:
		dst = append(dst, b0, byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
	}
	return append(dst, payload...)
}

// appendUnmasked appends payload unmasked with mask to dst.
func appendUnmasked(dst, payload []byte, mask [4]byte) []byte {
	off := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[off:], mask, 0)
	return dst
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// opName names an opcode for error messages.
func opName(op ws.OpCode) string {
	switch op {
	case ws.OpContinuation:
		return "continuation"
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	case ws.OpClose:
		return "close"
	case ws.OpPing:
		return "ping"
	case ws.OpPong:
		return "pong"
	}
	return fmt.Sprintf("opcode %#x", byte(op))
}
