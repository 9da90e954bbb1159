package main

import (
	"bufio"
	"bytes"
	"context"
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
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
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

// dialer opens logged-in client connections to the gateway with the t-im client package.
// Source addresses rotate over srcs, so that more connections fit than one address has
// ephemeral ports.
type dialer struct {
	addr    string
	proto   string
	srcs    []net.IP
	timeout time.Duration
	next    atomic.Uint64
}

func newDialer(addr, proto string, srcs []net.IP, timeout time.Duration) *dialer {
	return &dialer{addr: addr, proto: proto, srcs: srcs, timeout: timeout}
}

// login opens a connection and logs in as user: cmd 5 over TCP, ?username= in the
// WebSocket upgrade. It waits for the login response (cmd 6, code 10007). rest holds the
// bytes that arrived after the response, to be read first; packets before it are dropped.
func (d *dialer) login(ctx context.Context, user string) (c net.Conn, rest []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	opts := &timclient.Options{Timeout: d.timeout}
	if len(d.srcs) > 0 {
		opts.LocalAddr = &net.TCPAddr{IP: d.srcs[d.next.Add(1)%uint64(len(d.srcs))]}
	}
	addr := "tcp://" + d.addr
	if d.proto == protoWS {
		addr = "ws://" + d.addr + "/?username=" + url.QueryEscape(user)
	}
	tc, err := timclient.Dial(addr, opts)
	if err != nil {
		return nil, nil, err
	}
	if d.proto == protoWS {
		_, err = tc.ExpectStatus(packet.CmdLoginResp, packet.StatusLoginOK, d.timeout)
	} else {
		_, err = tc.Login(user, "", d.timeout)
	}
	if err != nil {
		tc.NetConn().Close()
		return nil, nil, fmt.Errorf("login %s: %w", user, err)
	}
	// The client's login leaves its read and write deadlines set: the bench's own
	// reading and writing have none.
	if err := tc.NetConn().SetDeadline(time.Time{}); err != nil {
		tc.NetConn().Close()
		return nil, nil, fmt.Errorf("login %s: clear deadlines: %w", user, err)
	}
	return tc.NetConn(), tc.Buffered(), nil
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

// appendFrame appends one client frame carrying body to dst: a t-im TCP frame or a
// masked WebSocket text frame.
func appendFrame(dst []byte, proto string, cmd packet.Cmd, body []byte) []byte {
	if proto == protoTCP {
		return timclient.AppendTCPFrame(dst, cmd, body)
	}
	return timclient.AppendWSText(dst, body)
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
