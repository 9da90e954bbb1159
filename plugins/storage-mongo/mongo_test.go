package storagemongo

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/timgw/timgw/core/pluginhost"
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
		cfg := testConfig(uri, name)
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

// testConfig is the Open configuration of the test store called name.
func testConfig(uri, name string) []byte {
	cfg, _ := json.Marshal(Config{URI: uri, Database: "timgwtest_" + name, Timeout: "20s"})
	return cfg
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

// TestMain lets the test binary serve as the plugin executable (`__plugin storage mongo`)
// for the shared-store checks, which start it several times.
func TestMain(m *testing.M) {
	pluginhost.Register(pluginhost.Builtin{Kind: pluginhost.Storage, Name: Name, Main: Main})
	pluginhost.Main()
	os.Exit(m.Run())
}

// TestSharedConformance runs several plugin processes on one database at once, as the
// gateways of a cluster do.
func TestSharedConformance(t *testing.T) {
	uri := os.Getenv(uriEnv)
	if uri == "" {
		t.Skipf("%s is not set: no MongoDB to test against (CI starts FerretDB with .ci/start-ferretdb.sh: eval \"$(bash .ci/start-ferretdb.sh)\")", uriEnv)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	open := opener(t)
	storagetest.RunShared(t, storagetest.SharedPlugin{
		Command: func() *exec.Cmd {
			cmd := pluginhost.Command(exe, pluginhost.Storage, Name)
			pluginhost.Tie(cmd)
			return cmd
		},
		Config: func(t *testing.T, name string) []byte {
			_ = open(t, name).Close() // creates the database's indexes, drops it when t ends
			return testConfig(uri, name)
		},
	})
}
