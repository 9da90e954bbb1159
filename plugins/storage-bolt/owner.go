package storagebolt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// OwnerFile is written next to timgw.db by the process holding its lock: who holds it,
// for the error of a second gateway on the same directory.
const OwnerFile = FileName + ".owner"

// writeOwner records this process (and its parent: the gateway that started this plugin)
// as the holder of dir's lock. It is best effort: the lock, not this file, keeps a second
// writer out.
func writeOwner(dir string) {
	host, _ := os.Hostname()
	s := fmt.Sprintf("pid %d (the gateway; storage plugin pid %d) on %s since %s\n",
		os.Getppid(), os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	_ = os.WriteFile(filepath.Join(dir, OwnerFile), []byte(s), 0o600)
}

// owner describes the holder of dir's lock, as its owner file says.
func owner(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, OwnerFile))
	if s := strings.TrimSpace(string(b)); err == nil && s != "" {
		return s
	}
	return "another process (no " + OwnerFile + ")"
}

// removeOwner removes the owner file at Close (the lock is still held).
func removeOwner(dir string) { _ = os.Remove(filepath.Join(dir, OwnerFile)) }

// lockWait is how long Open waits for the file lock: long enough for the process of a
// plugin being restarted to die and release it, short enough that a second gateway on
// the same directory fails at once.
const lockWait = time.Second
