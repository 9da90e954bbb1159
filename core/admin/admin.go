// Package admin serves the operator's side of the gateway: /admin/status (what the
// gateway is doing), /admin/reload (apply conf/ now), /metrics (Prometheus), and the
// pages /dashboard and /chat. It is plain net/http; the HTTP API mounts it. Every admin
// endpoint needs an admin key; the pages themselves are public (the dashboard asks for
// the key, the chat client logs in over WebSocket like any client).
package admin

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

// Options wire the admin endpoints to the gateway. Funcs are called from many
// goroutines.
type Options struct {
	// Keys returns the accepted admin keys (they change on reload).
	Keys func() []string
	// Status returns the JSON-encodable status document.
	Status func() any
	// Reload applies the configuration from its source and returns the result and
	// whether it was applied (or skipped as unchanged).
	Reload func() (result any, ok bool)
	// Metrics serves the Prometheus metrics.
	Metrics http.Handler
}

// Handler returns the admin endpoints and pages.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /admin/status", o.guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Status())
	})))
	mux.Handle("POST /admin/reload", o.guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		res, ok := o.Reload()
		code := http.StatusOK
		if !ok {
			code = http.StatusUnprocessableEntity
		}
		writeJSON(w, code, res)
	})))
	mux.Handle("GET /metrics", o.guard(o.Metrics))
	mux.Handle("GET /dashboard", page("dashboard.html"))
	mux.Handle("GET /chat", page("chat.html"))
	mountSDK(mux)
	return mux
}

// Paths lists the paths Handler serves, for mounting it on another router.
var Paths = []struct{ Method, Path string }{
	{"GET", "/admin/status"}, {"POST", "/admin/reload"}, {"GET", "/metrics"},
	{"GET", "/dashboard"}, {"GET", "/chat"},
}

// guard refuses requests without an admin key: "Authorization: Bearer KEY" or
// "X-Admin-Key: KEY".
func (o Options) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Admin-Key")
		if key == "" {
			key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if key == "" || !validKey(o.Keys(), key) {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 10029,
				"msg": "admin key required: header X-Admin-Key or Authorization: Bearer (admin.keys in the config)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func validKey(keys []string, key string) bool {
	ok := 0
	for _, k := range keys {
		if k != "" {
			ok |= subtle.ConstantTimeCompare([]byte(k), []byte(key))
		}
	}
	return ok == 1
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
