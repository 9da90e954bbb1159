package codec

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// Handshake is the go-plugin handshake of codec plugins. A plugin built against another
// ProtocolVersion is refused by go-plugin before the Hello call.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "TIMGW_CODEC_PLUGIN",
	MagicCookieValue: "timgw-codec-plugin-5f1c9e2a",
}

// PluginName is the name the codec plugin is dispensed under.
const PluginName = "codec"

// grpcCodecName is the gRPC content subtype of the codec service's messages.
const grpcCodecName = "timgw-codec-v1"

// maxMessage bounds one gRPC message either way.
const maxMessage = 128 << 20

// batch is one stream message: frames, back to back. A received batch owns b.
type batch struct{ b []byte }

// pooledBatch is a received batch whose bytes come from gRPC's buffer pool: the
// receiver reads b and then calls free. The plugin side uses it (its handlers copy what
// they keep); the host keeps packet bodies beyond the batch, so it uses batch.
type pooledBatch struct {
	buf mem.Buffer
	b   []byte
}

func (p *pooledBatch) free() {
	if p.buf != nil {
		p.buf.Free()
		p.buf, p.b = nil, nil
	}
}

// jsonMsg is a unary message, JSON-encoded.
type jsonMsg struct{ v any }

// wireCodec is the gRPC codec of the service: batches as they are, unary messages as
// JSON. Registered under its own name, so go-plugin's protobuf services are unaffected.
type wireCodec struct{}

var _ encoding.CodecV2 = wireCodec{}

func (wireCodec) Name() string { return grpcCodecName }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *batch:
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	case *jsonMsg:
		b, err := json.Marshal(m.v)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	return nil, fmt.Errorf("codec plugin wire: cannot marshal %T", v)
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *batch:
		m.b = data.Materialize()
		return nil
	case *pooledBatch:
		m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		m.b = m.buf.ReadOnlyData()
		return nil
	case *jsonMsg:
		return json.Unmarshal(data.Materialize(), m.v)
	}
	return fmt.Errorf("codec plugin wire: cannot unmarshal into %T", v)
}

func init() { encoding.RegisterCodecV2(wireCodec{}) }

const (
	serviceName  = "timgw.codec.v1.Codec"
	methodHello  = "/" + serviceName + "/Hello"
	methodStream = "/" + serviceName + "/Stream"
)

// codecServer is the plugin side of the service.
type codecServer interface {
	hello(ctx context.Context, h *Hello) (*helloReply, error)
	stream(s grpc.ServerStream) error
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*codecServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Hello",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var h Hello
			if err := dec(&jsonMsg{&h}); err != nil {
				return nil, err
			}
			r, err := srv.(codecServer).hello(ctx, &h)
			if err != nil {
				return nil, err
			}
			return &jsonMsg{r}, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, s grpc.ServerStream) error {
			return srv.(codecServer).stream(s)
		},
	}},
}

// grpcPlugin binds the service to go-plugin. The plugin side sets impl; the host side
// dispenses a *grpc.ClientConn.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv codecServer
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

// GRPCServer implements plugin.GRPCPlugin.
func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, p.srv)
	return nil
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return cc, nil
}

// windowSize is the HTTP/2 flow-control window of the stream and the connection.
const windowSize = 8 << 20

func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
		grpc.InitialWindowSize(windowSize), grpc.InitialConnWindowSize(windowSize),
		grpc.WriteBufferSize(256 << 10), grpc.ReadBufferSize(256 << 10),
	}
}

func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
		grpc.WithInitialWindowSize(windowSize), grpc.WithInitialConnWindowSize(windowSize),
		grpc.WithWriteBufferSize(256 << 10), grpc.WithReadBufferSize(256 << 10),
	}
}
