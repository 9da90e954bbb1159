// Package confwatch tells when files on disk change, debounced: a configuration file
// (config reload) or every file of a directory (the Lua scripts). It watches the
// directory, not the files: editors that write a temporary file and rename it over the
// target produce a CREATE on the target name and no WRITE, and a watch on the file
// itself dies after the first rename.
package confwatch

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls onChange (from one goroutine, never concurrently) after path changed and
// then stayed quiet for debounce. It returns when ctx is done.
func Watch(ctx context.Context, path string, debounce time.Duration, log *slog.Logger, onChange func()) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	if err := WatchDir(ctx, filepath.Dir(abs), debounce, log, func(name string) bool { return name == abs }, onChange); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	return nil
}

// WatchDir calls onChange (from one goroutine, never concurrently) after an entry of
// dir for which match is true (nil: every entry) was created, written, renamed or
// removed, and the directory then stayed quiet for debounce. match gets the entry's
// absolute path. It stops watching when ctx is done; an onChange already due may still
// run once after that.
func WatchDir(ctx context.Context, dir string, debounce time.Duration, log *slog.Logger, match func(name string) bool, onChange func()) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("watch directory %s: %w", dir, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch directory %s: %w", dir, err)
	}
	if err := w.Add(abs); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch directory %s: %w", dir, err)
	}
	if log == nil {
		log = slog.Default()
	}
	go func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op == fsnotify.Chmod {
					continue
				}
				if match != nil && !match(filepath.Clean(ev.Name)) {
					continue
				}
				timer.Reset(debounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("file watch error", "dir", abs, "err", err)
			case <-timer.C:
				onChange()
			}
		}
	}()
	return nil
}
