//go:build !linux

package storagebolt

import "os"

// fdatasync flushes f's data (and the metadata needed to read it back).
func fdatasync(f *os.File) error { return f.Sync() }
