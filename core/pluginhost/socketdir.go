package pluginhost

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SocketDir makes the directory plugins put their Unix sockets in. With dir set (the
// configuration's socket_dir) it is that directory, created if missing and kept. Empty,
// it is a new private directory in the system's temporary directory named prefix, the
// gateway's pid and a random suffix; the private directories of gateways that are gone
// (killed by force, so never cleaned up) are removed first. remove deletes a private
// directory and does nothing to a configured one.
func SocketDir(dir, prefix string, log *slog.Logger) (path string, remove func() error, err error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("socket directory: %w", err)
		}
		return dir, func() error { return nil }, nil
	}
	removeStale(prefix, log)
	d, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getpid()))
	if err != nil {
		return "", nil, fmt.Errorf("socket directory: %w", err)
	}
	return d, func() error { return os.RemoveAll(d) }, nil
}

// removeStale removes the private socket directories of gateways that are gone.
func removeStale(prefix string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, d := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), prefix), "-")
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && !processAlive(n) {
			if err := os.RemoveAll(d); err == nil && log != nil {
				log.Debug("removed the socket directory of a gateway that is gone", "dir", d)
			}
		}
	}
}
