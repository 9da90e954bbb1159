package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/codec/tcp"
	"github.com/timgw/timgw/core/packet"
)

// Protocols a client speaks.
const (
	protoTCP = "tcp"
	protoWS  = "ws"
)

// maxFrame bounds the frames the clients accept from the gateway.
const maxFrame = 1 << 20

func checkProto(p string) error {
	if p != protoTCP && p != protoWS {
		return fmt.Errorf("%w: -proto %q: want tcp or ws", errUsage, p)
	}
	return nil
}

// parseSources parses -src: "" (no explicit source address), a comma-separated list of
// IPs, or a range "127.0.0.2-127.0.0.9" (last octet varies).
func parseSources(s string) ([]net.IP, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, b := net.ParseIP(from).To4(), net.ParseIP(to).To4()
		if a == nil || b == nil || !bytes.Equal(a[:3], b[:3]) || a[3] > b[3] {
			return nil, fmt.Errorf("%w: -src %q: want A.B.C.x-A.B.C.y", errUsage, s)
		}
		var ips []net.IP
		for i := int(a[3]); i <= int(b[3]); i++ {
			ips = append(ips, net.IPv4(a[0], a[1], a[2], byte(i)))
		}
		return ips, nil
	}
	var ips []net.IP
	for _, f := range strings.Split(s, ",") {
		ip := net.ParseIP(strings.TrimSpace(f))
		if ip == nil {
			return nil, fmt.Errorf("%w: -src: %q is not an IP address", errUsage, f)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

// dialer opens logged-in client connections to the gateway. Source addresses rotate over
// srcs, so that more connections fit than one address has ephemeral ports.
type dialer struct {
	addr    string
	proto   string
	srcs    []net.IP
	timeout time.Duration
	next    atomic.Uint64
	codec   *tcp.Codec
}

func newDialer(addr, proto string, srcs []net.IP, timeout time.Duration) *dialer {
	return &dialer{addr: addr, proto: proto, srcs: srcs, timeout: timeout,
		codec: tcp.New(codec.Options{MaxFrame: maxFrame})}
}

func (d *dialer) netDialer() *net.Dialer {
	nd := &net.Dialer{Timeout: d.timeout}
	if len(d.srcs) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: d.srcs[d.next.Add(1)%uint64(len(d.srcs))]}
	}
	return nd
}

// login opens a connection, logs in as user and waits for the login response (cmd 6,
// code 10007). rest holds bytes that arrived after the response, to be read first.
func (d *dialer) login(ctx context.Context, user string) (c net.Conn, rest []byte, err error) {
	if d.proto == protoWS {
		return d.loginWS(ctx, user)
	}
	return d.loginTCP(ctx, user)
}

func (d *dialer) loginTCP(ctx context.Context, user string) (net.Conn, []byte, error) {
	c, err := d.netDialer().DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, nil, err
	}
	body, _ := json.Marshal(packet.Login{UserID: packet.Str(user)})
	_ = c.SetDeadline(time.Now().Add(d.timeout))
	if _, err := c.Write(tcp.Frame(packet.CmdLoginReq, body)); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("send login: %w", err)
	}
	buf := make([]byte, 0, 1024)
	var dec codec.Decoded
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		consumed, derr := d.codec.Decode(buf, &dec)
		if derr != nil {
			c.Close()
			return nil, nil, fmt.Errorf("read login response: %w", derr)
		}
		for _, p := range dec.Packets {
			if p.Cmd != packet.CmdLoginResp {
				continue
			}
			if err := checkCode(p.Body, packet.StatusLoginOK); err != nil {
				c.Close()
				return nil, nil, fmt.Errorf("login %s: %w", user, err)
			}
			_ = c.SetDeadline(time.Time{})
			return c, bytes.Clone(buf[consumed:]), nil
		}
		dec.Reset()
		buf = buf[:copy(buf, buf[consumed:])]
		if err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("read login response: %w", err)
		}
	}
}

func (d *dialer) loginWS(ctx context.Context, user string) (net.Conn, []byte, error) {
	nd := d.netDialer()
	wd := ws.Dialer{
		Timeout:        d.timeout,
		ReadBufferSize: 1024,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		},
	}
	c, br, _, err := wd.Dial(ctx, "ws://"+d.addr+"/?username="+url.QueryEscape(user))
	if err != nil {
		return nil, nil, err
	}
	var pre []byte
	if br != nil { // the gateway's first frames came with the upgrade response
		pre, _ = br.Peek(br.Buffered())
		pre = bytes.Clone(pre)
		ws.PutReader(br)
	}
	_ = c.SetDeadline(time.Now().Add(d.timeout))
	pr := bytes.NewReader(pre)
	r := io.MultiReader(pr, c)
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("read login response: %w", err)
		}
		if h.Length > maxFrame {
			c.Close()
			return nil, nil, fmt.Errorf("read login response: frame of %d bytes", h.Length)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("read login response: %w", err)
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			c.Close()
			return nil, nil, fmt.Errorf("login %s: gateway closed the WebSocket: %q", user, payload)
		case ws.OpText, ws.OpBinary:
			if cmd, _ := jsonInt(payload, "cmd"); packet.Cmd(cmd) != packet.CmdLoginResp {
				continue
			}
			if err := checkCode(payload, packet.StatusLoginOK); err != nil {
				c.Close()
				return nil, nil, fmt.Errorf("login %s: %w", user, err)
			}
			_ = c.SetDeadline(time.Time{})
			return c, pre[len(pre)-pr.Len():], nil
		}
	}
}

// checkCode returns an error unless the response body carries code want.
func checkCode(body []byte, want packet.Status) error {
	var r struct {
		Code packet.Status `json:"code"`
		Msg  string        `json:"msg"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("unreadable response %q: %w", body, err)
	}
	if r.Code != want {
		return fmt.Errorf("code %d (%s), want %d: %s", r.Code, r.Msg, want, body)
	}
	return nil
}

// loginAll logs in n users with up to conc logins at a time and returns their connections
// and leftover bytes, index i for user name(i). On the first failure it closes what it
// opened and returns the error.
func loginAll(ctx context.Context, d *dialer, n, conc int, name func(int) string, progress func(done int)) ([]net.Conn, [][]byte, error) {
	conns := make([]net.Conn, n)
	rests := make([][]byte, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, done atomic.Int64
		once       sync.Once
		first      error
		wg         sync.WaitGroup
	)
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, rest, err := d.login(ctx, name(i))
				if err != nil {
					once.Do(func() { first = fmt.Errorf("connection %d (user %s): %w", i, name(i), err); cancel() })
					return
				}
				conns[i], rests[i] = c, rest
				if k := int(done.Add(1)); progress != nil {
					progress(k)
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first != nil {
		closeAll(conns)
		return nil, nil, first
	}
	return conns, rests, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// sink receives what a reader decodes from one connection: every packet, then flush once
// the bytes at hand are used up (before the reader blocks again). body is valid only
// during the call.
type sink interface {
	packet(cmd packet.Cmd, body []byte)
	flush()
}

// readLoop reads the gateway's packets from c until it fails, handing them to s.
func readLoop(c net.Conn, proto string, rest []byte, s sink) error {
	if proto == protoWS {
		return readLoopWS(c, rest, s)
	}
	return readLoopTCP(c, rest, s)
}

func readLoopTCP(c net.Conn, rest []byte, s sink) error {
	cd := tcp.New(codec.Options{MaxFrame: maxFrame})
	buf := make([]byte, 0, 16<<10)
	buf = append(buf, rest...)
	var dec codec.Decoded
	for {
		if len(buf) > 0 {
			consumed, err := cd.Decode(buf, &dec)
			if err != nil {
				return err
			}
			for _, p := range dec.Packets {
				s.packet(p.Cmd, p.Body)
			}
			dec.Reset()
			buf = buf[:copy(buf, buf[consumed:])]
			s.flush()
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return err
		}
	}
}

func readLoopWS(c net.Conn, rest []byte, s sink) error {
	var src io.Reader = c
	if len(rest) > 0 {
		src = io.MultiReader(bytes.NewReader(rest), c)
	}
	br := bufio.NewReaderSize(src, 16<<10)
	payload := make([]byte, 4<<10)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return err
		}
		if h.Length > maxFrame {
			return fmt.Errorf("websocket frame of %d bytes", h.Length)
		}
		if int(h.Length) > cap(payload) {
			payload = make([]byte, h.Length)
		}
		p := payload[:h.Length]
		if _, err := io.ReadFull(br, p); err != nil {
			return err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if !h.Fin {
				return errors.New("fragmented websocket message (not expected from the gateway)")
			}
			cmd, _ := jsonInt(p, "cmd")
			s.packet(packet.Cmd(cmd), p)
		case ws.OpClose:
			return fmt.Errorf("gateway closed the WebSocket: %q", p)
		}
		if br.Buffered() == 0 {
			s.flush()
		}
	}
}

// appendFrame appends one client frame carrying body to dst: the t-im TCP frame (through
// the gateway's own TCP codec) or a masked WebSocket text frame.
func appendFrame(dst []byte, proto string, cd *tcp.Codec, cmd packet.Cmd, body []byte) []byte {
	if proto == protoTCP {
		return cd.Encode(dst, packet.Packet{Cmd: cmd, Body: body})
	}
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: int64(len(body))}
	_ = ws.WriteHeader(appendWriter{&dst}, h)
	start := len(dst)
	dst = append(dst, body...)
	ws.Cipher(dst[start:], h.Mask, 0)
	return dst
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ dst *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.dst = append(*w.dst, p...)
	return len(p), nil
}

// jsonInt returns the integer value of the first "key": member in a JSON body. It is a
// scan, not a parse: good for the gateway's own bodies, whose top-level "cmd" and "code"
// come before any nested object carrying the same key.
func jsonInt(body []byte, key string) (int64, bool) {
	var pat [32]byte
	k := append(append(append(pat[:0], '"'), key...), '"', ':')
	i := bytes.Index(body, k)
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(k):]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '"') {
		rest = rest[1:]
	}
	return parseDigits(rest)
}

// parseDigits parses the decimal digits at the front of b.
func parseDigits(b []byte) (int64, bool) {
	var v int64
	j := 0
	for ; j < len(b) && j < 18 && b[j] >= '0' && b[j] <= '9'; j++ {
		v = v*10 + int64(b[j]-'0')
	}
	return v, j > 0
}
