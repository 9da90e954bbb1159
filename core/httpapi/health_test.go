package httpapi

import "testing"

// /health answers 200 ok, degraded with its reason, and 503 draining once the shutdown
// began, whatever else holds.
func TestHealthStates(t *testing.T) {
	tests := []struct {
		name       string
		degraded   string
		draining   bool
		wantStatus int
		wantBody   string
	}{
		{"ok", "", false, 200, "ok"},
		{"degraded", "cluster bus disconnected", false, 200, "degraded"},
		{"draining", "", true, 503, "draining"},
		{"draining wins over degraded", "cluster bus disconnected", true, 503, "draining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, newFakeGateway(), Options{Degraded: func() string { return tt.degraded }})
			if tt.draining {
				ts.BeginShutdown()
			}
			r := ts.do(t, "GET", "/health", map[string]string{}, "")
			if r.Status != tt.wantStatus || r.Body["status"] != tt.wantBody {
				t.Errorf("GET /health: %d %s, want %d status %q", r.Status, r.Raw, tt.wantStatus, tt.wantBody)
			}
		})
	}
}
