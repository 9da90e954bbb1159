package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/timgw/timgw/core/pluginhost"
)

// restartResult is the answer of POST /admin/plugins/NAME/restart.
type restartResult struct {
	Plugin string `json:"plugin"`
	Kind   string `json:"kind,omitempty"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

// restartPlugin serves POST /admin/plugins/NAME/restart: a codec plugin by its configured
// name (a failed one is started again), or the storage plugin by its name (bolt, mongo,
// external) or "storage". 200 restarted, 404 no such plugin, 409 it cannot be restarted
// now (shutting down), 500 it did not start.
func (a *App) restartPlugin(name string) (any, int) {
	res := restartResult{Plugin: name}
	if a.codecs != nil && a.codecs.Has(name) {
		res.Kind = pluginhost.Codec
		if err := a.codecs.Restart(name); err != nil {
			res.Error = err.Error()
			return res, http.StatusInternalServerError
		}
		res.OK = true
		return res, http.StatusOK
	}
	if a.storage != nil && (name == "storage" || name == a.currentConfig().Storage.Resolved().Plugin) {
		res.Kind = pluginhost.Storage
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.storage.Restart(ctx); err != nil {
			res.Error = err.Error()
			if errors.Is(err, pluginhost.ErrNotRunning) {
				return res, http.StatusConflict
			}
			return res, http.StatusInternalServerError
		}
		res.OK = true
		return res, http.StatusOK
	}
	res.Error = fmt.Sprintf("no plugin %q: codec plugins by their configured name, the storage plugin by its name or \"storage\"", name)
	return res, http.StatusNotFound
}
