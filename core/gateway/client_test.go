package gateway

import (
	"testing"
	"unsafe"
)

// TestClientSizeClass guards the memory per idle logged-in connection: the command
// layer's state stays in the 24-byte size class; what only some connections use hangs
// off one pointer.
func TestClientSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(client{}); n > 24 {
		t.Fatalf("client is %d bytes, want at most 24: move the new field into clientMore", n)
	}
}
