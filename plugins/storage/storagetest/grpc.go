package storagetest

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// OverGRPC wraps open so that the suite talks to the store through the plugin transport
// the gateway uses: the SDK's gRPC server around the Backend, and the SDK's Client
// (batched write stream, error mapping) in front of it, over a Unix socket.
func OverGRPC(open Opener) Opener {
	return func(t *testing.T, name string) storage.Backend {
		t.Helper()
		return Serve(t, open(t, name))
	}
}

// Serve serves b through the SDK's gRPC server on a Unix socket and returns a Backend
// that talks to it through the SDK's Client; closing that closes b too.
func Serve(tb testing.TB, b storage.Backend) storage.Backend {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	srv := storage.NewGRPCServer(nil)
	pb.RegisterStorageServer(srv, storage.NewServer(b))
	go func() { _ = srv.Serve(ln) }()
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		tb.Fatal(err)
	}
	c := storage.NewClient(pb.NewStorageClient(cc), storage.ClientOptions{})
	return &overGRPC{Client: c, close: func() error {
		_ = c.Close()
		_ = cc.Close()
		srv.Stop()
		return b.Close()
	}}
}

type overGRPC struct {
	*storage.Client
	close func() error
}

// Open is not forwarded: the Opener has opened the backend already.
func (o *overGRPC) Open(context.Context, *pb.OpenRequest) (*pb.OpenResponse, error) {
	return &pb.OpenResponse{}, nil
}

func (o *overGRPC) Close() error { return o.close() }
