package httpapi

import (
	"net"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		remote string
		want   bool
	}{
		{"127.0.0.1:5000", true},
		{"127.8.9.10:1", true},
		{"[::1]:443", true},
		{"[::ffff:127.0.0.1]:80", true},
		{"::1", true},
		{"127.0.0.1", true},
		{"10.0.0.5:5000", false},
		{"192.168.1.20:80", false},
		{"[2001:db8::1]:80", false},
		{"0.0.0.0:80", false},
		{"localhost:80", false}, // a name, not an address: not trusted
		{"", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.remote); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.remote, got, tt.want)
		}
	}
}

func TestRefuseDevelopmentKey(t *testing.T) {
	tests := []struct {
		key, remote string
		want        bool
	}{
		{"dev-api-key", "127.0.0.1:1", false},
		{"dev-admin-key", "[::1]:1", false},
		{"dev-api-key", "10.1.2.3:1", true},
		{"dev-admin-key", "203.0.113.7:1", true},
		{"my-own-key", "10.1.2.3:1", false},
		{"dev-api-key ", "10.1.2.3:1", false}, // keys are trimmed before; this is not a dev key
	}
	for _, tt := range tests {
		if got := RefuseDevelopmentKey(tt.key, tt.remote); got != tt.want {
			t.Errorf("RefuseDevelopmentKey(%q, %q) = %v, want %v", tt.key, tt.remote, got, tt.want)
		}
	}
}

// remoteListener accepts loopback connections and reports them as coming from remote.
type remoteListener struct {
	net.Listener
	remote net.Addr
}

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c, l.remote}, nil
}

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// TestDevelopmentKeyOnlyFromLoopback serves requests that appear to come from a LAN
// address: the development keys are refused there with a message saying why; a key of
// the operator's own works.
func TestDevelopmentKeyOnlyFromLoopback(t *testing.T) {
	keys := []string{"dev-api-key", "dev-admin-key", "own-key"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	far := startServerOn(t, remoteListener{ln, &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000}},
		newFakeGateway(), Options{Keys: keys})
	near := startServer(t, newFakeGateway(), Options{Keys: keys})
	tests := []struct {
		name   string
		ts     *testServer
		path   string
		header map[string]string
		status int
	}{
		{"dev key from LAN", far, "/api/v1/users/alice", map[string]string{"X-API-Key": "dev-api-key"}, 401},
		{"dev key as Bearer from LAN", far, "/api/v1/users/alice", map[string]string{"Authorization": "Bearer dev-api-key"}, 401},
		{"dev admin key from LAN", far, "/api/v1/users/alice", map[string]string{"X-API-Key": "dev-admin-key"}, 401},
		{"dev key on J-IM from LAN", far, "/api/user/online?userid=alice&api_key=dev-api-key", map[string]string{}, 401},
		{"own key from LAN", far, "/api/v1/users/alice", map[string]string{"X-API-Key": "own-key"}, 200},
		{"dev key from loopback", near, "/api/v1/users/alice", map[string]string{"X-API-Key": "dev-api-key"}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.ts.do(t, "GET", tc.path, tc.header, "")
			if tc.status == 200 {
				if r.Status != 200 {
					t.Fatalf("HTTP %d, want 200: %s", r.Status, r.Raw)
				}
				return
			}
			check(t, r, 401, int(packet.StatusAuthFailed), "accepted only from loopback clients, not from 10.1.2.3")
			if !strings.Contains(r.msg(), "api.keys") {
				t.Errorf("msg %q does not say what to configure", r.msg())
			}
		})
	}
}
