package lua

import (
	"context"
	"time"

	"github.com/timgw/timgw/core/confwatch"
)

// debounce is how long the directory must be quiet before a reload: editors write a
// file in several steps (temp file, rename, chmod).
const debounce = 150 * time.Millisecond

// watcher is the watch of one scripts directory (confwatch.WatchDir on every entry:
// the runtime reads scripts by pattern and the *.txt word lists beside them).
type watcher struct {
	path   string
	cancel context.CancelFunc
}

// rewatch makes the watch follow r.watched (reloadMu held).
func (r *Runtime) rewatch() error {
	if r.watcher != nil && r.watcher.path == r.watched {
		return nil
	}
	if r.watcher != nil {
		r.watcher.close()
		r.watcher = nil
	}
	if r.watched == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{path: r.watched, cancel: cancel}
	if err := confwatch.WatchDir(ctx, w.path, debounce, r.log.With("hooks_dir", w.path), nil, func() { r.rescan(w) }); err != nil {
		cancel()
		return err
	}
	r.watcher = w
	return nil
}

// close stops the watch. It is called with reloadMu held, so it does not wait for the
// watch, which may be waiting for reloadMu in rescan (rescan then sees the watcher is
// no longer current and does nothing).
func (w *watcher) close() { w.cancel() }
