// Package integration holds timgw's end-to-end tests: TestMain builds the real binary
// with the race detector (go build -race ./cmd/timgw), the tests start it as a
// subprocess with their own configuration and drive it over real sockets with the
// Go SDK's low-level client (sdk/go/timgw/wire, imported as timclient) and its session
// client (sdk/go/timgw): t-im TCP, WebSocket and HTTP, plain and over TLS, on the
// shared port and on dedicated listeners.
//
// Run them with
//
//	go test -race ./integration/...
//
// Set TIMGW_BIN to a prebuilt binary to skip the build. On failure a test prints the
// gateway's log written while it ran.
package integration
