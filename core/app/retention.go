package app

import (
	"context"
	"errors"
	"net/http"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/store"
	"github.com/timgw/timgw/plugins/storage"
)

// Retention and erasure (docs/storage.md#retention-and-erasure): the janitor runs while
// storage is on, reading storage.retention before every pass (so a reload applies at the
// next one), and DELETE /admin/users/{id} erases a user.

// startRetention starts the janitor and the reload step of storage.retention.
func (a *App) startRetention() {
	if a.storage == nil {
		return
	}
	j, err := store.NewJanitor(a.storage, store.JanitorOptions{Logger: a.log, Registerer: a.metrics.Registry,
		Retention: func() config.Retention { return a.currentConfig().Storage.Retention }})
	if err != nil {
		a.log.Error("storage retention: not started", "err", err)
		return
	}
	a.janitor = j
	j.Start()
	a.AddReloadStep("storage.retention", StepFunc(func(old, cur *config.Config) (Change, error) {
		if old.Storage.Retention == cur.Storage.Retention {
			return NoChange, nil
		}
		if err := cur.Storage.Retention.Validate(); err != nil {
			return nil, err
		}
		return CommitFunc(func() []string { return []string{"storage.retention"} }), nil
	}))
}

// erased is the answer of DELETE /admin/users/{id}.
type erased struct {
	User    string       `json:"user"`
	Removed store.Erased `json:"removed"`
	// Groups are the groups this gateway removed the user from (its registry).
	Groups []string `json:"groups"`
}

// eraseUser removes user's stored data, then the user's group memberships known to this
// gateway.
func (a *App) eraseUser(ctx context.Context, user string) (any, int) {
	if a.storage == nil {
		return map[string]any{"error": "storage is off (storage.plugin: none): nothing is stored"}, http.StatusConflict
	}
	res, err := store.NewService(a.storage).Erase(ctx, user)
	switch {
	case errors.Is(err, storage.ErrInvalid):
		return map[string]any{"error": err.Error()}, http.StatusBadRequest
	case errors.Is(err, storage.ErrUnsupported):
		return map[string]any{"error": "the storage plugin does not implement erasure: " + err.Error()}, http.StatusNotImplemented
	case err != nil:
		a.log.Warn("erase user failed", "user", user, "err", err)
		return map[string]any{"error": err.Error()}, http.StatusServiceUnavailable
	}
	out := erased{User: user, Removed: res, Groups: []string{}}
	for _, g := range a.reg.Groups(user) {
		if a.reg.Leave(g, user) {
			out.Groups = append(out.Groups, g)
		}
	}
	a.log.Info("user erased", "user", user, "messages", res.Messages, "inbox", res.Inbox,
		"conversations", res.Conversations, "groups", res.Groups)
	return out, http.StatusOK
}
