package confwatch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchSeesWritesAndRenames(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "timgw.yaml")
	if err := os.WriteFile(path, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan struct{}, 10)
	if err := Watch(ctx, path, 50*time.Millisecond, slog.Default(), func() { changes <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	expect := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(5 * time.Second):
			t.Fatalf("no change seen after %s", what)
		}
	}
	// In-place write.
	if err := os.WriteFile(path, []byte("a: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("a write")
	// Editor style: write a temp file, rename it over the target; twice, to check the
	// watch survives the first rename.
	for i := 0; i < 2; i++ {
		tmp := filepath.Join(dir, ".timgw.yaml.swp")
		if err := os.WriteFile(tmp, []byte("a: 3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		expect("a rename")
	}
	// Other files in the directory do not count.
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
		t.Fatal("a change to another file was reported")
	case <-time.After(300 * time.Millisecond):
	}
}
