// Package wire is the low-level client of the t-im wire protocol as timgw speaks it
// (docs/protocol.md): the binary TCP framing (1-byte cmd, 4-byte big-endian length, JSON
// body) and WebSocket (one JSON object per text frame), each plain or over TLS, plus a
// client of the HTTP API. The integration tests and timgw-bench drive the gateway with it;
// the high-level client, package timgw one directory up (reconnection, offline messages,
// typed events), is built on it.
//
// A Conn does no I/O in the background: Recv and Expect read with a deadline, so a timeout
// leaves the connection usable (bytes of a partly received frame stay buffered). Reads
// (Recv, Expect, Sync, ExpectClosed and the request helpers) must come from one goroutine
// at a time; writes (Send, WriteFrame, WriteRaw) may be made from other goroutines
// concurrently with reads and with each other.
//
// Framing is implemented here from the protocol description, not borrowed from the
// gateway's codecs, so that the tests check the gateway against the contract rather
// than against itself. Only the WebSocket upgrade handshake is delegated to
// github.com/gobwas/ws.
package wire

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/packet"
)

// Proto is the wire protocol of a connection.
type Proto int

// Protocols.
const (
	TCP Proto = iota // t-im binary framing
	WS               // WebSocket text frames of JSON
)

// String returns "tcp" or "ws".
func (p Proto) String() string {
	if p == WS {
		return "ws"
	}
	return "tcp"
}

// TCPHeaderLen is the size of a t-im TCP frame header: cmd (1) + body length (4).
const TCPHeaderLen = 5

// DefaultTimeout bounds dialing and the handshakes when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxInbound is the largest frame body the client accepts from a server (a sanity bound
// against a corrupt length, not a protocol limit).
const maxInbound = 64 << 20

// ErrClosed is returned by reads once the server has closed the connection: an end of
// stream, a reset, or a WebSocket close frame (then the error is a *CloseError, which
// matches ErrClosed with errors.Is).
var ErrClosed = errors.New("wire: connection closed by the server")

// CloseError reports a WebSocket close frame from the server.
type CloseError struct {
	Code   int    // status code, 1005 when the frame had none
	Reason string // reason text
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("wire: websocket closed by the server: %d %q", e.Code, e.Reason)
}

// Is makes a *CloseError match ErrClosed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// Options tune Dial. The zero value is usable.
type Options struct {
	// TLSConfig is used for tls:// and wss:// addresses. When nil, a config with the
	// system roots is used. Its ServerName defaults to the host being dialed.
	TLSConfig *tls.Config
	// Timeout bounds the connect, the TLS handshake and the WebSocket upgrade
	// (DefaultTimeout when zero).
	Timeout time.Duration
	// LocalAddr, when set, is the local address to dial from (for example
	// 127.0.0.2:0 when one source address runs out of ephemeral ports).
	LocalAddr net.Addr
}

// Conn is one client connection to the gateway.
type Conn struct {
	nc    net.Conn
	proto Proto

	wmu sync.Mutex // serializes writes (Send, pongs)

	// read side, owned by the reading goroutine
	rbuf    []byte // received bytes not yet parsed: rbuf[roff:]
	roff    int
	rerr    error // sticky read error (end of stream, reset)
	pending []packet.Packet
	frag    []byte // WebSocket: payload of a fragmented message in progress
	inFrag  bool
}

// Dial connects to a gateway. addr is a URL whose scheme picks the protocol:
//
//	tcp://host:port          t-im TCP framing
//	tls://host:port          t-im TCP framing over TLS
//	ws://host:port/path?q    WebSocket (path and query are sent in the upgrade request,
//	                         e.g. /?username=alice&password=x to log in during it)
//	wss://host:port/path?q   WebSocket over TLS
//
// A bare host:port means tcp://host:port.
func Dial(addr string, opts *Options) (*Conn, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	d := net.Dialer{Deadline: deadline, LocalAddr: opts.LocalAddr}
	nc, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("wire: dial %s: %w", addr, err)
	}
	if u.Scheme == "tls" || u.Scheme == "wss" {
		cfg := &tls.Config{}
		if opts.TLSConfig != nil {
			cfg = opts.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err = tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("wire: TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	c := &Conn{nc: nc, proto: TCP}
	if u.Scheme == "ws" || u.Scheme == "wss" {
		c.proto = WS
		if err := c.upgrade(u, deadline); err != nil {
			nc.Close()
			return nil, fmt.Errorf("wire: websocket upgrade with %s: %w", addr, err)
		}
	}
	return c, nil
}

func parseAddr(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		// host:port without a scheme
		if _, _, serr := net.SplitHostPort(addr); serr == nil {
			return &url.URL{Scheme: "tcp", Host: addr}, nil
		}
		return nil, fmt.Errorf("wire: bad address %q", addr)
	}
	switch u.Scheme {
	case "tcp", "tls", "ws", "wss":
	default:
		return nil, fmt.Errorf("wire: address %q: scheme must be tcp, tls, ws or wss", addr)
	}
	return u, nil
}

// upgrade performs the WebSocket opening handshake on c.nc. Frames the server sent
// right after its answer (a login response for a query-parameter login) are kept.
func (c *Conn) upgrade(u *url.URL, deadline time.Time) error {
	wu := *u
	if wu.Path == "" {
		wu.Path = "/"
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return err
	}
	br, _, err := ws.Dialer{}.Upgrade(c.nc, &wu)
	if err != nil {
		return err
	}
	if br != nil {
		n := br.Buffered()
		b, _ := br.Peek(n)
		c.rbuf = append(c.rbuf, b...)
		ws.PutReader(br)
	}
	return c.nc.SetDeadline(time.Time{})
}

// Proto returns the connection's protocol.
func (c *Conn) Proto() Proto { return c.proto }

// NetConn returns the underlying connection (a *tls.Conn for TLS forms).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection. For WebSocket it first sends a close frame, best effort.
func (c *Conn) Close() error {
	if c.proto == WS {
		c.wmu.Lock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.nc.Write(WSFrame(wsOpClose, []byte{0x03, 0xe8})) // 1000 normal closure
		c.wmu.Unlock()
	}
	return c.nc.Close()
}

// ---- writing ----

// Send writes one packet. body is a JSON object given as []byte, json.RawMessage or
// string (sent as it is), or any value json.Marshal turns into an object. Over
// WebSocket, a body without a "cmd" member gets one ("cmd":cmd) so that the server can
// tell the command; a body that has one is sent unchanged, so `{"cmd":"11",...}` in
// t-im's demo style stays as it is.
func (c *Conn) Send(cmd packet.Cmd, body any) error {
	b, err := marshalBody(body)
	if err != nil {
		return err
	}
	if c.proto == WS {
		b = withCmd(b, cmd)
	}
	return c.WriteFrame(cmd, b)
}

// WriteFrame writes body in one frame of the connection's protocol without looking at
// it: a TCP frame of command cmd, or a WebSocket text frame (cmd is then unused).
func (c *Conn) WriteFrame(cmd packet.Cmd, body []byte) error {
	if c.proto == WS {
		return c.WriteRaw(WSFrame(wsOpText, body))
	}
	return c.WriteRaw(TCPFrame(cmd, body))
}

// WriteRaw writes bytes to the connection as they are (after the WebSocket handshake
// when there is one): for split, merged or malformed frames.
func (c *Conn) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.nc.SetWriteDeadline(time.Now().Add(DefaultTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

// TCPFrame returns the t-im TCP wire form of one packet: cmd, big-endian body length,
// body.
func TCPFrame(cmd packet.Cmd, body []byte) []byte {
	return AppendTCPFrame(make([]byte, 0, TCPHeaderLen+len(body)), cmd, body)
}

// AppendTCPFrame appends the t-im TCP wire form of one packet to dst (for writing many
// packets with one write).
func AppendTCPFrame(dst []byte, cmd packet.Cmd, body []byte) []byte {
	dst = append(dst, byte(cmd))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA
)

// WSText returns the wire form of one final, masked WebSocket text frame carrying
// payload, as a client sends it.
func WSText(payload []byte) []byte { return WSFrame(wsOpText, payload) }

// WSFrame returns the wire form of one final, masked (client-to-server) WebSocket
// frame of the given opcode.
func WSFrame(op byte, payload []byte) []byte {
	return appendWSFrame(make([]byte, 0, 14+len(payload)), op, payload)
}

// AppendWSText appends the wire form of one final, masked WebSocket text frame carrying
// payload to dst (for writing many frames with one write).
func AppendWSText(dst, payload []byte) []byte { return appendWSFrame(dst, wsOpText, payload) }

func appendWSFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	binary.BigEndian.PutUint32(key[:], maskKey())
	b = append(b, key[:]...)
	for i, x := range payload {
		b = append(b, x^key[i&3])
	}
	return b
}

var (
	maskMu  sync.Mutex
	maskCtr uint32 = 0x9e3779b9
)

// maskKey returns a varying masking key. RFC 6455 asks for unpredictable keys to protect
// intermediaries; a test and load client only needs them to vary.
func maskKey() uint32 {
	maskMu.Lock()
	defer maskMu.Unlock()
	maskCtr = maskCtr*1664525 + 1013904223
	return maskCtr
}

func marshalBody(body any) ([]byte, error) {
	switch v := body.(type) {
	case nil:
		return []byte("{}"), nil
	case []byte:
		return v, nil
	case json.RawMessage:
		return v, nil
	case string:
		return []byte(v), nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("wire: encode body: %w", err)
	}
	return b, nil
}

// withCmd returns b with a "cmd" member added when it is a JSON object without one.
func withCmd(b []byte, cmd packet.Cmd) []byte {
	var head struct {
		Cmd json.RawMessage `json:"cmd"`
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &head) != nil || head.Cmd != nil {
		return b
	}
	rest := bytes.TrimSpace(t[1:])
	out := make([]byte, 0, len(t)+16)
	out = append(out, `{"cmd":`...)
	out = strconv.AppendInt(out, int64(cmd), 10)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// ---- reading ----

// Recv returns the next packet from the server, waiting at most timeout. Packets set
// aside by Expect come first. Over WebSocket the packet's Cmd is the body's "cmd".
func (c *Conn) Recv(timeout time.Duration) (packet.Packet, error) {
	if len(c.pending) > 0 {
		p := c.pending[0]
		c.pending = c.pending[1:]
		return p, nil
	}
	return c.read(time.Now().Add(timeout))
}

// Expect returns the next packet of command cmd, waiting at most timeout. Packets of
// other commands read meanwhile are kept, in order, for later Recv and Expect calls.
func (c *Conn) Expect(cmd packet.Cmd, timeout time.Duration) (packet.Packet, error) {
	for i, p := range c.pending {
		if p.Cmd == cmd {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			return p, nil
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.read(deadline)
		if err != nil {
			return p, fmt.Errorf("waiting for cmd %d (%s): %w (other packets received: %s)",
				cmd, cmd, err, Describe(c.pending))
		}
		if p.Cmd == cmd {
			return p, nil
		}
		c.pending = append(c.pending, p)
	}
}

// Err returns the error that ended reading, nil while the connection is open: ErrClosed
// (wrapped) after an end of stream or reset, a *CloseError after a WebSocket close frame.
func (c *Conn) Err() error { return c.rerr }

// Pending returns the packets Expect has set aside, without consuming them.
func (c *Conn) Pending() []packet.Packet { return c.pending }

// Buffered returns a copy of the bytes received but not parsed into packets yet: with
// NetConn, what a reader of its own needs to take the connection over (after a login,
// say).
func (c *Conn) Buffered() []byte { return bytes.Clone(c.rbuf[c.roff:]) }

// ExpectClosed waits at most timeout for the server to close the connection. It
// returns the packets that arrived before the close (set-aside ones included) and nil
// when the connection was closed, or an error when it was still open at the deadline.
func (c *Conn) ExpectClosed(timeout time.Duration) ([]packet.Packet, error) {
	got := c.pending
	c.pending = nil
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.read(deadline)
		if errors.Is(err, ErrClosed) {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("connection not closed by the server: %w (packets received: %s)", err, Describe(got))
		}
		got = append(got, p)
	}
}

// Sync is a round-trip barrier: it sends a heartbeat (cmd 13) and reads until the
// heartbeat's answer, returning every other packet received before it (set-aside ones
// first). Since the server answers a connection's requests in order, anything the server
// had queued for this connection before it handled the heartbeat is in the result.
func (c *Conn) Sync(timeout time.Duration) ([]packet.Packet, error) {
	got := c.pending
	c.pending = nil
	if err := c.Send(packet.CmdHeartbeatReq, map[string]any{"cmd": 13, "hbbyte": 1}); err != nil {
		return got, err
	}
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.read(deadline)
		if err != nil {
			return got, fmt.Errorf("waiting for the heartbeat answer: %w (packets received: %s)", err, Describe(got))
		}
		if p.Cmd == packet.CmdHeartbeatReq {
			return got, nil
		}
		got = append(got, p)
	}
}

// read parses the next packet out of the buffer, reading more with the deadline.
func (c *Conn) read(deadline time.Time) (packet.Packet, error) {
	for {
		p, ok, err := c.parse()
		if err != nil {
			return packet.Packet{}, err
		}
		if ok {
			return p, nil
		}
		if c.rerr != nil {
			return packet.Packet{}, c.rerr
		}
		if err := c.fill(deadline); err != nil {
			return packet.Packet{}, err
		}
	}
}

// fill reads at least one byte into the buffer, or fails. End of stream and resets
// become the sticky ErrClosed; a timeout is returned as it is and leaves the stream
// intact.
func (c *Conn) fill(deadline time.Time) error {
	if c.roff > 0 && c.roff >= len(c.rbuf)/2 {
		n := copy(c.rbuf, c.rbuf[c.roff:])
		c.rbuf = c.rbuf[:n]
		c.roff = 0
	}
	if cap(c.rbuf)-len(c.rbuf) < 4096 {
		nb := make([]byte, len(c.rbuf), 2*cap(c.rbuf)+8192)
		copy(nb, c.rbuf)
		c.rbuf = nb
	}
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		c.rerr = fmt.Errorf("%w (%v)", ErrClosed, err)
		return c.rerr
	}
	n, err := c.nc.Read(c.rbuf[len(c.rbuf):cap(c.rbuf)])
	c.rbuf = c.rbuf[:len(c.rbuf)+n]
	if n > 0 {
		if err != nil && !isTimeout(err) {
			c.rerr = closedErr(err)
		}
		return nil
	}
	if err == nil {
		return nil
	}
	if isTimeout(err) {
		return fmt.Errorf("wire: read timed out: %w", err)
	}
	c.rerr = closedErr(err)
	return c.rerr
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func closedErr(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrClosed
	}
	return fmt.Errorf("%w (%v)", ErrClosed, err)
}

// parse returns the next whole packet in the buffer, if any.
func (c *Conn) parse() (packet.Packet, bool, error) {
	if c.proto == WS {
		return c.parseWS()
	}
	b := c.rbuf[c.roff:]
	if len(b) < TCPHeaderLen {
		return packet.Packet{}, false, c.truncated(len(b))
	}
	n := binary.BigEndian.Uint32(b[1:TCPHeaderLen])
	if n > maxInbound {
		return packet.Packet{}, false, fmt.Errorf("wire: server frame of cmd %d declares %d bytes", b[0], n)
	}
	if uint64(len(b)) < TCPHeaderLen+uint64(n) {
		return packet.Packet{}, false, c.truncated(len(b))
	}
	body := make([]byte, n)
	copy(body, b[TCPHeaderLen:])
	c.roff += TCPHeaderLen + int(n)
	return packet.Packet{Cmd: packet.Cmd(b[0]), Body: body}, true, nil
}

// truncated reports a stream that ended inside a frame.
func (c *Conn) truncated(have int) error {
	if c.rerr != nil && have > 0 {
		return fmt.Errorf("%w inside a frame (%d bytes of it received)", c.rerr, have)
	}
	return nil
}

// parseWS consumes whole WebSocket frames from the buffer until a data message is
// complete. It answers pings, ignores pongs, and turns a close frame into *CloseError.
func (c *Conn) parseWS() (packet.Packet, bool, error) {
	for {
		b := c.rbuf[c.roff:]
		if len(b) < 2 {
			return packet.Packet{}, false, c.truncated(len(b))
		}
		fin := b[0]&0x80 != 0
		op := b[0] & 0x0f
		masked := b[1]&0x80 != 0
		hl := 2
		n := uint64(b[1] & 0x7f)
		switch n {
		case 126:
			hl += 2
		case 127:
			hl += 8
		}
		if masked {
			hl += 4
		}
		if len(b) < hl {
			return packet.Packet{}, false, c.truncated(len(b))
		}
		switch n {
		case 126:
			n = uint64(binary.BigEndian.Uint16(b[2:4]))
		case 127:
			n = binary.BigEndian.Uint64(b[2:10])
		}
		if n > maxInbound {
			return packet.Packet{}, false, fmt.Errorf("wire: server websocket frame declares %d bytes", n)
		}
		if uint64(len(b)) < uint64(hl)+n {
			return packet.Packet{}, false, c.truncated(len(b))
		}
		payload := make([]byte, n)
		copy(payload, b[hl:])
		if masked { // servers must not mask; tolerate it anyway
			key := b[hl-4 : hl]
			for i := range payload {
				payload[i] ^= key[i&3]
			}
		}
		c.roff += hl + int(n)

		switch op {
		case wsOpPing:
			if err := c.WriteRaw(WSFrame(wsOpPong, payload)); err != nil {
				return packet.Packet{}, false, err
			}
			continue
		case wsOpPong:
			continue
		case wsOpClose:
			ce := &CloseError{Code: 1005}
			if len(payload) >= 2 {
				ce.Code = int(binary.BigEndian.Uint16(payload))
				ce.Reason = string(payload[2:])
			}
			_ = c.WriteRaw(WSFrame(wsOpClose, payload[:min(2, len(payload))]))
			c.rerr = ce
			return packet.Packet{}, false, ce
		case wsOpText, wsOpBinary:
			if c.inFrag {
				return packet.Packet{}, false, errors.New("wire: server started a websocket message inside a fragmented one")
			}
			if !fin {
				c.inFrag = true
				c.frag = append(c.frag[:0], payload...)
				continue
			}
			return wsPacket(payload)
		case wsOpContinuation:
			if !c.inFrag {
				return packet.Packet{}, false, errors.New("wire: server sent a websocket continuation frame with no message in progress")
			}
			c.frag = append(c.frag, payload...)
			if !fin {
				continue
			}
			c.inFrag = false
			msg := c.frag
			c.frag = nil
			return wsPacket(msg)
		default:
			return packet.Packet{}, false, fmt.Errorf("wire: server sent websocket opcode %#x", op)
		}
	}
}

// wsPacket makes a packet of a WebSocket message: its command is the body's "cmd".
func wsPacket(msg []byte) (packet.Packet, bool, error) {
	var head struct {
		Cmd *packet.Int `json:"cmd"`
	}
	if err := json.Unmarshal(msg, &head); err != nil {
		return packet.Packet{Body: msg}, false, fmt.Errorf("wire: server websocket message is not a JSON object: %w: %.200q", err, msg)
	}
	if head.Cmd == nil || *head.Cmd < 0 || *head.Cmd > 255 {
		return packet.Packet{Body: msg}, false, fmt.Errorf("wire: server websocket message has no valid \"cmd\": %.200q", msg)
	}
	return packet.Packet{Cmd: packet.Cmd(*head.Cmd), Body: msg}, true, nil
}

// Describe renders packets briefly for error messages: cmd and body.
func Describe(ps []packet.Packet) string {
	if len(ps) == 0 {
		return "none"
	}
	var b bytes.Buffer
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[cmd %d %.300s]", p.Cmd, p.Body)
	}
	return b.String()
}
