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

func TestWatchDirSeesEveryMatchingEntry(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan struct{}, 10)
	lua := func(name string) bool { return filepath.Ext(name) == ".lua" }
	if err := WatchDir(ctx, dir, 50*time.Millisecond, slog.Default(), lua, func() { changes <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	steps := []struct {
		name   string
		do     func() error
		report bool
	}{
		{"create a.lua", func() error { return os.WriteFile(path("a.lua"), []byte("x"), 0o644) }, true},
		{"create b.lua", func() error { return os.WriteFile(path("b.lua"), []byte("x"), 0o644) }, true},
		{"edit a.lua", func() error { return os.WriteFile(path("a.lua"), []byte("y"), 0o644) }, true},
		{"remove b.lua", func() error { return os.Remove(path("b.lua")) }, true},
		{"create notes.md", func() error { return os.WriteFile(path("notes.md"), []byte("x"), 0o644) }, false},
		{"chmod a.lua", func() error { return os.Chmod(path("a.lua"), 0o600) }, false},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		timeout := 5 * time.Second
		if !s.report {
			timeout = 300 * time.Millisecond
		}
		select {
		case <-changes:
			if !s.report {
				t.Fatalf("%s was reported", s.name)
			}
		case <-time.After(timeout):
			if s.report {
				t.Fatalf("%s was not reported", s.name)
			}
		}
	}
}

func TestWatchDirMissing(t *testing.T) {
	err := WatchDir(context.Background(), filepath.Join(t.TempDir(), "gone"), time.Millisecond, nil, nil, func() {})
	if err == nil {
		t.Fatal("watching a missing directory did not fail")
	}
}
