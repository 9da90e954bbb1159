package codec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// HostHandler receives a plugin's frames on the host, from one goroutine, in order.
// Its methods must not block.
type HostHandler interface {
	// Packet is a packet the plugin decoded from connection conn, for the gateway.
	// p.Body stays valid after the call.
	Packet(conn uint64, p Packet)
	// Write is bytes to write to connection conn. b is valid only during the call.
	Write(conn uint64, b []byte)
	// Close asks to close connection conn.
	Close(conn uint64, reason string)
	// Closed says the plugin has forgotten connection conn, which the host closed
	// (Client.Close): nothing more will come for it.
	Closed(conn uint64)
	// Flush ends a batch: a handler that gathers packets hands them on now.
	Flush()
}

// LaunchConfig configures Launch.
type LaunchConfig struct {
	// Cmd is the plugin command, not started. Its Env is the plugin's whole
	// environment (the host's is not added): set PLUGIN_UNIX_SOCKET_DIR there to keep
	// the plugin's socket in a private directory, and SysProcAttr.Pdeathsig to kill the
	// plugin with the host.
	Cmd *exec.Cmd
	// Hello is sent at the handshake; Versions defaults to [WireVersion].
	Hello Hello
	// Handler receives the plugin's frames.
	Handler HostHandler
	// Logger receives go-plugin's and the plugin's log lines.
	Logger *slog.Logger
	// StartTimeout bounds the start and the handshake (default 10 s).
	StartTimeout time.Duration
	// Batch tunes the host→plugin batches.
	Batch BatchOptions
}

// Client is the host side of a running codec plugin.
type Client struct {
	pc      *plugin.Client
	info    Info
	version int
	pid     int
	log     *slog.Logger
	out     *outbox
	stream  grpc.ClientStream
	cancel  context.CancelFunc
	sent    chan struct{} // the sender ended

	doneOnce sync.Once
	done     chan struct{}
	err      error // why the stream ended; set before done is closed
}

// Launch starts the plugin, runs the handshake and opens the stream.
func Launch(cfg LaunchConfig) (*Client, error) {
	if cfg.Cmd == nil || cfg.Handler == nil {
		return nil, errors.New("codec plugin launch: Cmd and Handler are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if len(cfg.Hello.Versions) == 0 {
		cfg.Hello.Versions = []int{WireVersion}
	}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{PluginName: &grpcPlugin{}},
		Cmd:              cfg.Cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           newHclog(cfg.Logger),
		StartTimeout:     cfg.StartTimeout,
		GRPCDialOptions:  dialOptions(),
	})
	c, err := handshake(pc, cfg)
	if err != nil {
		pc.Kill()
		return nil, err
	}
	return c, nil
}

func handshake(pc *plugin.Client, cfg LaunchConfig) (*Client, error) {
	rpc, err := pc.Client()
	if err != nil {
		return nil, fmt.Errorf("start codec plugin %s: %w", cfg.Cmd.Path, err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return nil, fmt.Errorf("codec plugin %s: dispense: %w", cfg.Cmd.Path, err)
	}
	cc, ok := raw.(*grpc.ClientConn)
	if !ok {
		return nil, fmt.Errorf("codec plugin %s: dispensed %T, want a gRPC connection", cfg.Cmd.Path, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	var reply helloReply
	if err := cc.Invoke(ctx, methodHello, &jsonMsg{&cfg.Hello}, &jsonMsg{&reply}, grpc.CallContentSubtype(grpcCodecName)); err != nil {
		return nil, fmt.Errorf("codec plugin %s: hello: %w", cfg.Cmd.Path, err)
	}
	if !containsInt(cfg.Hello.Versions, reply.Version) {
		return nil, fmt.Errorf("codec plugin %s: answered wire version %d, the host speaks %v", cfg.Cmd.Path, reply.Version, cfg.Hello.Versions)
	}
	sctx, scancel := context.WithCancel(context.Background())
	st, err := cc.NewStream(sctx, &serviceDesc.Streams[0], methodStream, grpc.CallContentSubtype(grpcCodecName))
	if err != nil {
		scancel()
		return nil, fmt.Errorf("codec plugin %s: open stream: %w", cfg.Cmd.Path, err)
	}
	c := &Client{
		pc: pc, info: reply.Info, version: reply.Version, log: cfg.Logger,
		out: newOutbox(cfg.Batch, false), stream: st, cancel: scancel,
		sent: make(chan struct{}), done: make(chan struct{}),
	}
	if rc := pc.ReattachConfig(); rc != nil {
		c.pid = rc.Pid
	}
	go c.send()
	go c.recv(cfg.Handler)
	return c, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (c *Client) send() {
	defer close(c.sent)
	err := c.out.run(func(b []byte) error { return c.stream.SendMsg(&batch{b}) })
	if errors.Is(err, errStopping) {
		_ = c.stream.CloseSend()
		return
	}
	c.finish(fmt.Errorf("send to plugin: %w", err))
}

func (c *Client) recv(h HostHandler) {
	for {
		var b batch
		if err := c.stream.RecvMsg(&b); err != nil {
			c.finish(fmt.Errorf("plugin stream: %w", err))
			return
		}
		var f Frame
		for rest := b.b; len(rest) > 0; {
			var err error
			if rest, err = NextFrame(rest, &f); err != nil {
				c.finish(fmt.Errorf("plugin sent a bad batch: %w", err))
				return
			}
			switch f.Kind {
			case KindPacket:
				h.Packet(f.Conn, f.Packet())
			case KindWrite:
				h.Write(f.Conn, f.Data)
			case KindClose:
				h.Close(f.Conn, f.Reason)
			case KindClosed:
				h.Closed(f.Conn)
			default:
				c.finish(fmt.Errorf("plugin sent a %s frame", f.Kind))
				return
			}
		}
		h.Flush()
	}
}

func (c *Client) finish(err error) {
	c.doneOnce.Do(func() {
		if c.pc.Exited() {
			err = fmt.Errorf("plugin process exited: %w", err)
		}
		c.err = err
		c.out.close(ErrStreamClosed)
		c.cancel()
		close(c.done)
	})
}

// errStopping closes the outbox on a deliberate stop.
var errStopping = errors.New("codec plugin stopping")

// Info is what the plugin said at the handshake.
func (c *Client) Info() Info { return c.info }

// Version is the negotiated wire version.
func (c *Client) Version() int { return c.version }

// Pid is the plugin's process id (0 when unknown).
func (c *Client) Pid() int { return c.pid }

// Plugin is go-plugin's client of the process, for the host's health checks.
func (c *Client) Plugin() *plugin.Client { return c.pc }

// Done is closed when the stream has ended (the plugin crashed, exited or was stopped).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the stream ended; valid once Done is closed.
func (c *Client) Err() error {
	<-c.done
	return c.err
}

// Open tells the plugin about a new connection.
func (c *Client) Open(conn uint64, remote, transport string) error {
	return c.out.add(frameSize(len(remote)+len(transport)+10), func(b []byte) []byte {
		return AppendOpen(b, conn, remote, transport)
	})
}

// Data forwards bytes a client sent.
func (c *Client) Data(conn uint64, data []byte) error {
	return c.out.add(frameSize(len(data)), func(b []byte) []byte { return AppendData(b, KindData, conn, data) })
}

// Packet forwards a packet the gateway sends to a client.
func (c *Client) Packet(conn uint64, p Packet) error {
	return c.out.add(frameSize(len(p.Body)), func(b []byte) []byte { return AppendPacket(b, conn, p) })
}

// Close tells the plugin a connection is gone; the plugin answers with a closed frame
// (HostHandler.Closed) once it has sent everything it decoded from it.
func (c *Client) Close(conn uint64, reason string) error {
	return c.out.add(frameSize(len(reason)), func(b []byte) []byte { return AppendClose(b, conn, reason) })
}

// Stop sends what is queued, ends the stream and stops the plugin process (gracefully,
// then by force: go-plugin waits up to 2 s). It returns when the process is gone or ctx
// ends.
func (c *Client) Stop(ctx context.Context) {
	c.out.close(errStopping)
	select {
	case <-c.sent:
	case <-ctx.Done():
	}
	killed := make(chan struct{})
	go func() {
		c.pc.Kill()
		close(killed)
	}()
	select {
	case <-killed:
	case <-ctx.Done():
	}
	c.finish(errors.New("stopped"))
}
