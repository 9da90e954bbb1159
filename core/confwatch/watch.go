// Package confwatch tells when a configuration file changes on disk. It watches the
// file's directory, not the file: editors that write a temporary file and rename it over
// the target produce a CREATE on the target name and no WRITE, and a watch on the file
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
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch directory %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		var timer *time.Timer
		var fire <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) != abs || ev.Op == fsnotify.Chmod {
					continue
				}
				if timer == nil {
					timer = time.NewTimer(debounce)
				} else {
					timer.Reset(debounce)
				}
				fire = timer.C
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("config watch error", "dir", dir, "err", err)
			case <-fire:
				fire = nil
				onChange()
			}
		}
	}()
	return nil
}
