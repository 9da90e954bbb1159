package codec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Serve runs p as a codec plugin and does not return while the host is connected:
// it answers go-plugin's handshake, serves the codec service and exits with the host.
// Started by hand (without the host's magic cookie), it prints a notice and exits.
func Serve(p Plugin) {
	log := PluginLogger()
	slog.SetDefault(log)
	// SIGTERM is for the gateway, which closes its clients and then stops its plugins;
	// a service manager that signals every process of the service must not take the
	// protocol away first (the host stops the plugin, the kernel kills it with the host).
	signal.Ignore(syscall.SIGTERM)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &grpcPlugin{srv: newServer(p, log)}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, serverOptions()...)...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Info}),
	})
}

// server is the plugin side of the codec service.
type server struct {
	impl Plugin
	log  *slog.Logger

	mu        sync.Mutex
	info      *Info
	linger    time.Duration
	streaming bool
}

var _ codecServer = (*server)(nil)

func newServer(p Plugin, log *slog.Logger) *server { return &server{impl: p, log: log} }

func (s *server) hello(_ context.Context, h *Hello) (*helloReply, error) {
	if !slices.Contains(h.Versions, WireVersion) {
		return nil, fmt.Errorf("codec plugin speaks wire version %d, the host offers %v", WireVersion, h.Versions)
	}
	info, err := s.impl.Init(*h)
	if err != nil {
		return nil, fmt.Errorf("plugin init: %w", err)
	}
	if info.TickInterval <= 0 {
		info.TickInterval = time.Second
	}
	s.mu.Lock()
	s.info, s.linger = &info, max(h.BatchLinger, 0)
	s.mu.Unlock()
	return &helloReply{Version: WireVersion, Info: info}, nil
}

func (s *server) stream(st grpc.ServerStream) error {
	s.mu.Lock()
	if s.info == nil || s.streaming {
		s.mu.Unlock()
		return errors.New("codec plugin: one stream, after Hello")
	}
	s.streaming = true
	info, linger := *s.info, s.linger
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.streaming = false
		s.mu.Unlock()
	}()

	out := newOutbox(BatchOptions{Linger: linger}, true)
	sent := make(chan error, 1)
	go func() { sent <- out.run(func(b []byte) error { return st.SendMsg(&batch{b}) }) }()

	in := make(chan *pooledBatch, 64)
	var recvErr error
	go func() {
		defer close(in)
		for {
			b := new(pooledBatch)
			if err := st.RecvMsg(b); err != nil {
				recvErr = err
				return
			}
			in <- b
		}
	}()

	d := &dispatcher{impl: s.impl, out: out, log: s.log, conns: make(map[uint64]*pconn)}
	ticker, _ := s.impl.(Ticker)
	tick := time.NewTicker(info.TickInterval)
	defer tick.Stop()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				reason := "host stream ended"
				if recvErr != nil && !errors.Is(recvErr, io.EOF) {
					reason = fmt.Sprintf("host stream failed: %v", recvErr)
				}
				d.closeAll(reason)
				out.close(ErrStreamClosed)
				<-sent
				if errors.Is(recvErr, io.EOF) {
					return nil
				}
				return recvErr
			}
			d.batch(b.b) // handlers copy what they keep
			b.free()
		case now := <-tick.C:
			if ticker != nil {
				d.safely(0, func() { ticker.Tick(now) })
			}
		}
	}
}

// dispatcher runs frames from the host against the plugin, on one goroutine.
type dispatcher struct {
	impl  Plugin
	out   *outbox
	log   *slog.Logger
	conns map[uint64]*pconn
}

func (d *dispatcher) batch(b []byte) {
	var f Frame
	for len(b) > 0 {
		var err error
		if b, err = NextFrame(b, &f); err != nil {
			d.log.Error("dropping the rest of a batch from the host", "err", err)
			return
		}
		d.frame(&f)
	}
}

func (d *dispatcher) frame(f *Frame) {
	switch f.Kind {
	case KindOpen:
		c := &pconn{id: f.Conn, remote: f.Remote, transport: f.Transport, out: d.out}
		d.conns[f.Conn] = c
		d.safely(f.Conn, func() { c.h = d.impl.Open(c) })
	case KindData:
		if c := d.conns[f.Conn]; c != nil && c.h != nil {
			d.safely(f.Conn, func() { c.h.Data(f.Data) })
		}
	case KindPacket:
		if c := d.conns[f.Conn]; c != nil && c.h != nil {
			d.safely(f.Conn, func() { c.h.Packet(f.Packet()) })
		}
	case KindClose:
		if c := d.conns[f.Conn]; c != nil {
			delete(d.conns, f.Conn)
			if c.h != nil {
				d.safely(0, func() { c.h.Closed(f.Reason) })
			}
		}
		id := f.Conn
		_ = d.out.add(frameSize(0), func(b []byte) []byte { return AppendClosed(b, id) })
	default:
		d.log.Warn("unexpected frame from the host", "kind", f.Kind, "conn", f.Conn)
	}
}

// safely runs f; a panic closes connection id (when not 0) instead of the plugin.
func (d *dispatcher) safely(id uint64, f func()) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("plugin panic", "conn", id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if c := d.conns[id]; c != nil {
				c.h = nil // no more calls into a handler in an unknown state
				c.Close(fmt.Sprintf("codec plugin panic: %v", r))
			}
		}
	}()
	f()
}

func (d *dispatcher) closeAll(reason string) {
	for id, c := range d.conns {
		delete(d.conns, id)
		if c.h != nil {
			d.safely(0, func() { c.h.Closed(reason) })
		}
	}
}

// pconn is the plugin side of one connection.
type pconn struct {
	id        uint64
	remote    string
	transport string
	out       *outbox
	h         ConnHandler // dispatcher goroutine only
}

var _ Conn = (*pconn)(nil)

func (c *pconn) ID() uint64         { return c.id }
func (c *pconn) RemoteAddr() string { return c.remote }
func (c *pconn) Transport() string  { return c.transport }

func (c *pconn) Emit(p Packet) {
	_ = c.out.add(frameSize(len(p.Body)), func(b []byte) []byte { return AppendPacket(b, c.id, p) })
}

func (c *pconn) Write(b []byte) {
	if len(b) == 0 {
		return
	}
	_ = c.out.add(frameSize(len(b)), func(dst []byte) []byte { return AppendData(dst, KindWrite, c.id, b) })
}

func (c *pconn) Close(reason string) {
	_ = c.out.add(frameSize(len(reason)), func(b []byte) []byte { return AppendClose(b, c.id, reason) })
}
