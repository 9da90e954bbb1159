package storagemongo

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"

	"github.com/timgw/timgw/core/pluginhost"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// startPluginProcess starts this test binary as the mongo plugin (TestMain), opens cfg in
// it and returns its client and the process (killed when t ends).
func startPluginProcess(t *testing.T, cfg []byte) (*storage.Client, *os.Process) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := pluginhost.Command(exe, pluginhost.Storage, Name)
	pluginhost.Tie(cmd)
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  storage.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{storage.ProtocolVersion: {storage.PluginName: &storage.GRPCPlugin{}}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     time.Minute,
		GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(storage.CallOptions()...)},
	})
	t.Cleanup(pc.Kill)
	rpc, err := pc.Client()
	if err != nil {
		t.Fatalf("start plugin process: %v", err)
	}
	raw, err := rpc.Dispense(storage.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*storage.Client)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
		t.Fatalf("open in the plugin process: %v", err)
	}
	p, err := os.FindProcess(pc.ReattachConfig().Pid)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// TestReadFanoutKillMidPull: a plugin process killed with SIGKILL while it pulls a long
// backlog for a member (some entries written, its pull lock held) loses nothing: the next
// Inbox, in another process, takes the dead lock over once it is older than pullLease
// and completes the pull, one entry per chat.
func TestReadFanoutKillMidPull(t *testing.T) {
	name := fmt.Sprintf("rfkill%d", time.Now().UnixNano()%1e9)
	s := opener(t)(t, name).(*Store)
	t.Cleanup(func() { _ = s.Close() })
	old := pullLease
	pullLease = time.Second
	t.Cleanup(func() { pullLease = old })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "big", Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	const nChats = 2000 // two pull rounds
	for i := 0; i < nChats; i += 200 {
		var reqs []*pb.AppendRequest
		for j := i; j < i+200; j++ {
			reqs = append(reqs, rfChat("alice", "big", fmt.Sprintf("k%04d", j)))
		}
		if _, err := s.Append(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	c, proc := startPluginProcess(t, testConfig(os.Getenv(uriEnv), name))
	go func() { _, _ = c.Inbox(ctx, &pb.InboxRequest{User: "bob", Limit: 10}) }()
	// Kill it once its first entries are written: mid-pull.
	for {
		n, err := s.inbox.CountDocuments(ctx, bson.D{{Key: "user", Value: "bob"}})
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	n, _ := s.inbox.CountDocuments(ctx, bson.D{{Key: "user", Value: "bob"}})
	locks, _ := s.pullsColl().CountDocuments(ctx, bson.D{})
	t.Logf("killed with %d of %d entries written, %d pull lock left", n, nChats, locks)
	res, err := s.Inbox(ctx, &pb.InboxRequest{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range res.Entries {
		if seen[e.Message.Id] {
			t.Errorf("%s twice", e.Message.Id)
		}
		seen[e.Message.Id] = true
	}
	if len(seen) != nChats {
		t.Errorf("bob's inbox after the kill: %d chats, want %d", len(seen), nChats)
	}
}
