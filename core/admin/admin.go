// Package admin serves the operator's side of the gateway: /admin/status (what the
// gateway is doing), /admin/reload (apply conf/ now), /admin/plugins/NAME/restart
// (restart a plugin, reviving a failed one), /metrics (Prometheus), and the
// pages /dashboard and /chat. It is plain net/http; the HTTP API mounts it. Every admin
// endpoint needs an admin key (the development key dev-admin-key only from loopback
// clients), and refuses in the HTTP API's error shape; the pages themselves are public
// (the dashboard asks for the key, the chat client logs in over WebSocket like any client).
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/timgw/timgw/core/httpapi"
	"github.com/timgw/timgw/core/packet"
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
	// RestartPlugin restarts plugin name (a codec plugin's configured name, or the storage
	// plugin by its name or "storage") and returns the JSON answer and its HTTP status.
	RestartPlugin func(name string) (result any, status int)
	// EraseUser erases a user (DELETE /admin/users/{id}): closes its connections and
	// drops its memberships on every node, removes its stored data, and returns the JSON
	// answer and its HTTP status.
	EraseUser func(ctx context.Context, user string) (result any, status int)
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
	mux.Handle("POST /admin/plugins/{name}/restart", o.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.RestartPlugin == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "no plugins to restart"})
			return
		}
		res, code := o.RestartPlugin(r.PathValue("name"))
		writeJSON(w, code, res)
	})))
	mux.Handle("GET /dashboard", page("dashboard.html"))
	mux.Handle("GET /chat", page("chat.html"))
	mountSDK(mux)
	mountErase(mux, o)
	return mux
}

// Paths lists the paths Handler serves, for mounting it on another router.
var Paths = []struct{ Method, Path string }{
	{"GET", "/admin/status"}, {"POST", "/admin/reload"}, {"GET", "/metrics"},
	{"GET", "/dashboard"}, {"GET", "/chat"},
	{"POST", "/admin/plugins/:name/restart"}, // the router's syntax for POST /admin/plugins/{name}/restart
}

// guard refuses requests without an admin key: "Authorization: Bearer KEY" or
// "X-Admin-Key: KEY". A development key (dev-admin-key) is accepted only from loopback
// clients. Refusals have the API's error shape (httpapi.WriteError): 401, code 10010.
func (o Options) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Admin-Key")
		if key == "" {
			key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		var msg string
		switch {
		case key == "":
			msg = "missing admin key: send header \"X-Admin-Key: <key>\" or \"Authorization: Bearer <key>\" (admin.keys in the config)"
		case !validKey(o.Keys(), key):
			msg = "invalid admin key (admin.keys in the config)"
		case httpapi.RefuseDevelopmentKey(key, r.RemoteAddr):
			msg = httpapi.DevelopmentKeyRefusal("admin.keys (or TIMGW_ADMIN_KEY)", r.RemoteAddr)
		default:
			h.ServeHTTP(w, r)
			return
		}
		httpapi.WriteError(w, packet.StatusAuthFailed, msg)
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
