package admin

import (
	"net/http"
)

// DELETE /admin/users/{id}: the right to erasure. The gateway takes the user out of its
// groups and closes its connections on every node, removes the user's stored data
// (docs/storage.md#retention-and-erasure) and answers what was done.

func init() {
	Paths = append(Paths, struct{ Method, Path string }{"DELETE", "/admin/users/:id"})
}

// mountErase serves DELETE /admin/users/{id} on mux, guarded by the admin key.
func mountErase(mux *http.ServeMux, o Options) {
	mux.Handle("DELETE /admin/users/{id}", o.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.EraseUser == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "erasure is not available"})
			return
		}
		res, code := o.EraseUser(r.Context(), r.PathValue("id"))
		writeJSON(w, code, res)
	})))
}
