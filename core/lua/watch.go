package lua

import (
	"fmt"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long the directory must be quiet before a reload: editors write a
// file in several steps (temp file, rename, chmod).
const debounce = 150 * time.Millisecond

// watcher watches one directory (not its files: an editor's write-then-rename would
// kill a watch on the file) and calls reload once changes settle.
type watcher struct {
	path string
	fsw  *fsnotify.Watcher
	done chan struct{}
	once sync.Once
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
	w, err := newWatcher(r.watched, r)
	if err != nil {
		return err
	}
	r.watcher = w
	return nil
}

func newWatcher(dir string, r *Runtime) (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if err := fsw.Add(dir); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	w := &watcher{path: dir, fsw: fsw, done: make(chan struct{})}
	go w.loop(r)
	return w, nil
}

func (w *watcher) loop(r *Runtime) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			r.log.Warn("hooks: watching scripts directory", "error", err)
		case <-timer.C:
			r.rescan(w)
		}
	}
}

// close stops the watch. It is called with reloadMu held, so it does not wait for the
// loop, which may be waiting for reloadMu in rescan (rescan then sees the watcher is
// no longer current and does nothing).
func (w *watcher) close() {
	w.once.Do(func() {
		close(w.done)
		w.fsw.Close()
	})
}
