package storagemongo

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
	"github.com/timgw/timgw/plugins/storage/storagetest"
)

// uriEnv names the MongoDB (or FerretDB) the tests use; they skip without it.
const uriEnv = "TIMGW_MONGO_URI"

// opener opens stores as databases "timgwtest_<name>" of the server in TIMGW_MONGO_URI,
// dropped when the test that created them ends.
func opener(t *testing.T) storagetest.Opener {
	uri := os.Getenv(uriEnv)
	if uri == "" {
		t.Skipf("%s is not set: no MongoDB to test against (CI starts FerretDB with .ci/start-ferretdb.sh: eval \"$(bash .ci/start-ferretdb.sh)\")", uriEnv)
	}
	return func(t *testing.T, name string) storage.Backend {
		t.Helper()
		cfg, _ := json.Marshal(Config{URI: uri, Database: "timgwtest_" + name, Timeout: "20s"})
		s := &Store{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.Open(ctx, &pb.OpenRequest{Config: cfg}); err != nil {
			t.Fatalf("Open %s: %v", uri, err)
		}
		t.Cleanup(func() {
			d := &Store{}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := d.Open(ctx, &pb.OpenRequest{Config: cfg}); err == nil {
				_ = d.Drop(ctx)
				_ = d.Close()
			}
		})
		return s
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, opener(t))
}

func TestConformanceOverGRPC(t *testing.T) {
	storagetest.Run(t, storagetest.OverGRPC(opener(t)))
}

func TestOpenBadConfig(t *testing.T) {
	for _, cfg := range []string{`{"timeout": "soon"}`, `{"uri": 5}`, `[`} {
		s := &Store{}
		if _, err := s.Open(context.Background(), &pb.OpenRequest{Config: []byte(cfg)}); err == nil {
			_ = s.Close()
			t.Errorf("Open(%s) succeeded", cfg)
		}
	}
}
