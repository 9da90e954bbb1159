package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// MaxMessageBytes bounds one gRPC message between host and plugin (a batch of chats).
const MaxMessageBytes = 64 << 20

// maxMerge bounds how many chats the server hands one Backend.Append call.
const maxMerge = 4096

// Serve runs a storage plugin: it serves b over go-plugin's gRPC transport until the host
// goes away. Call it from the plugin's main.
func Serve(b Backend) {
	// SIGTERM is for the gateway, which stops its plugins in order (storage last, after
	// the chats in flight are stored); a service manager that signals every process of
	// the service must not take the store away first. The host kills a plugin it no
	// longer wants, and the kernel kills it with the host (pluginhost.Tie).
	signal.Ignore(syscall.SIGTERM)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &GRPCPlugin{Impl: b}},
		},
		GRPCServer: NewGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "storage", Level: hclog.Info, Output: os.Stderr, JSONFormat: true,
		}),
	})
}

// NewGRPCServer is the gRPC server of plugins: go-plugin's default with room for large
// batches.
func NewGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))...)
}

// GRPCPlugin is the go-plugin glue of storage plugins: on the plugin side it serves Impl,
// on the host side it returns a *Client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the backend served (plugin side only).
	Impl Backend
	// ClientOptions configure the Client returned on the host side.
	ClientOptions ClientOptions
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterStorageServer(s, NewServer(p.Impl))
	return nil
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return NewClient(pb.NewStorageClient(cc), p.ClientOptions), nil
}

// Server serves a Backend as the gRPC Storage service.
type Server struct {
	pb.UnimplementedStorageServer
	b Backend
}

var _ pb.StorageServer = (*Server)(nil)

// NewServer returns the gRPC service of b.
func NewServer(b Backend) *Server { return &Server{b: b} }

// Open implements pb.StorageServer.
func (s *Server) Open(ctx context.Context, r *pb.OpenRequest) (*pb.OpenResponse, error) {
	res, err := s.b.Open(ctx, r)
	return res, toStatus(err)
}

// Append implements pb.StorageServer: it reads batches on one goroutine and commits them
// on another, merging every batch that arrived during the previous commit into one
// Backend.Append (group commit). Results go back in the order the batches came.
func (s *Server) Append(stream grpc.BidiStreamingServer[pb.AppendBatch, pb.AppendBatchResult]) error {
	ctx := stream.Context()
	in := make(chan *pb.AppendBatch, 256)
	recvErr := make(chan error, 1)
	go func() {
		defer close(in)
		for {
			b, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case in <- b:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
		}
	}()
	var batches []*pb.AppendBatch
	var reqs []*pb.AppendRequest
	for {
		b, ok := <-in
		if !ok {
			if err := <-recvErr; !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		}
		batches, reqs = append(batches[:0], b), append(reqs[:0], b.Requests...)
	merge:
		for len(reqs) < maxMerge {
			select {
			case b, ok := <-in:
				if !ok {
					break merge
				}
				batches, reqs = append(batches, b), append(reqs, b.Requests...)
			default:
				break merge
			}
		}
		results, err := s.b.Append(ctx, reqs)
		if err == nil && len(results) != len(reqs) {
			err = fmt.Errorf("backend returned %d results for %d chats", len(results), len(reqs))
		}
		for _, b := range batches {
			out := &pb.AppendBatchResult{Batch: b.Batch}
			if err != nil {
				out.Error = err.Error()
			} else {
				out.Results, results = results[:len(b.Requests)], results[len(b.Requests):]
			}
			if serr := stream.Send(out); serr != nil {
				return serr
			}
		}
	}
}

// Inbox implements pb.StorageServer.
func (s *Server) Inbox(ctx context.Context, r *pb.InboxRequest) (*pb.InboxResponse, error) {
	res, err := s.b.Inbox(ctx, r)
	return res, toStatus(err)
}

// Confirm implements pb.StorageServer.
func (s *Server) Confirm(ctx context.Context, r *pb.ConfirmRequest) (*pb.ConfirmResponse, error) {
	res, err := s.b.Confirm(ctx, r)
	return res, toStatus(err)
}

// History implements pb.StorageServer.
func (s *Server) History(ctx context.Context, r *pb.HistoryRequest) (*pb.HistoryResponse, error) {
	res, err := s.b.History(ctx, r)
	return res, toStatus(err)
}

// Recall implements pb.StorageServer.
func (s *Server) Recall(ctx context.Context, r *pb.RecallRequest) (*pb.RecallResponse, error) {
	res, err := s.b.Recall(ctx, r)
	return res, toStatus(err)
}

// JoinGroup implements pb.StorageServer.
func (s *Server) JoinGroup(ctx context.Context, r *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	res, err := s.b.JoinGroup(ctx, r)
	return res, toStatus(err)
}

// LeaveGroup implements pb.StorageServer.
func (s *Server) LeaveGroup(ctx context.Context, r *pb.LeaveGroupRequest) (*pb.LeaveGroupResponse, error) {
	res, err := s.b.LeaveGroup(ctx, r)
	return res, toStatus(err)
}

// ListGroups implements pb.StorageServer.
func (s *Server) ListGroups(ctx context.Context, r *pb.ListRequest) (*pb.ListGroupsResponse, error) {
	res, err := s.b.ListGroups(ctx, r)
	return res, toStatus(err)
}

// PutUser implements pb.StorageServer.
func (s *Server) PutUser(ctx context.Context, r *pb.PutUserRequest) (*pb.PutUserResponse, error) {
	res, err := s.b.PutUser(ctx, r)
	return res, toStatus(err)
}

// ListUsers implements pb.StorageServer.
func (s *Server) ListUsers(ctx context.Context, r *pb.ListRequest) (*pb.ListUsersResponse, error) {
	res, err := s.b.ListUsers(ctx, r)
	return res, toStatus(err)
}
