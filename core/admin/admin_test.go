package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func testHandler() http.Handler {
	return Handler(Options{
		Keys:    func() []string { return []string{"dev-admin-key", "own-admin-key"} },
		Status:  func() any { return map[string]any{"ok": true} },
		Reload:  func() (any, bool) { return map[string]any{"applied": true}, true },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics\n")) }),
	})
}

// TestGuard checks who may use the admin endpoints, and that every refusal has the API's
// error shape: {"code","msg","data"} with the HTTP status of the code.
func TestGuard(t *testing.T) {
	h := testHandler()
	tests := []struct {
		name, remote string
		header       []string
		status       int
		msg          string
	}{
		{"no key", "127.0.0.1:5000", nil, 401, "missing admin key"},
		{"wrong key", "127.0.0.1:5000", []string{"X-Admin-Key", "nope"}, 401, "invalid admin key"},
		{"wrong bearer", "127.0.0.1:5000", []string{"Authorization", "Bearer nope"}, 401, "invalid admin key"},
		{"dev key from loopback", "127.0.0.1:5000", []string{"X-Admin-Key", "dev-admin-key"}, 200, ""},
		{"dev key from IPv6 loopback", "[::1]:5000", []string{"Authorization", "Bearer dev-admin-key"}, 200, ""},
		{"dev key from LAN", "192.168.7.9:5000", []string{"X-Admin-Key", "dev-admin-key"}, 401,
			"accepted only from loopback clients, not from 192.168.7.9: configure admin.keys"},
		{"dev bearer from LAN", "192.168.7.9:5000", []string{"Authorization", "Bearer dev-admin-key"}, 401, "only from loopback"},
		{"own key from LAN", "192.168.7.9:5000", []string{"X-Admin-Key", "own-admin-key"}, 200, ""},
	}
	for _, tt := range tests {
		for _, ep := range []struct{ method, path string }{{"GET", "/admin/status"}, {"POST", "/admin/reload"}, {"GET", "/metrics"}} {
			t.Run(tt.name+" "+ep.path, func(t *testing.T) {
				req := httptest.NewRequest(ep.method, ep.path, nil)
				req.RemoteAddr = tt.remote
				for i := 0; i+1 < len(tt.header); i += 2 {
					req.Header.Set(tt.header[i], tt.header[i+1])
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != tt.status {
					t.Fatalf("HTTP %d, want %d: %s", rec.Code, tt.status, rec.Body)
				}
				if tt.status == 200 {
					return
				}
				var body map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("body is not JSON: %v: %s", err, rec.Body)
				}
				if len(body) != 3 || body["code"] != float64(10010) || body["data"] != nil {
					t.Errorf("body %s, want {\"code\":10010,\"msg\":...,\"data\":null}", rec.Body)
				}
				if msg, _ := body["msg"].(string); !strings.Contains(msg, tt.msg) {
					t.Errorf("msg %q does not contain %q", msg, tt.msg)
				}
				if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") || rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("headers %v", rec.Header())
				}
			})
		}
	}
}
