package app

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/gateway"
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
	// Groups are the groups the user was removed from, on every node of a cluster.
	Groups []string `json:"groups"`
	// Disconnected counts the user's connections closed, on every node, when the
	// erasure began.
	Disconnected int `json:"disconnected"`
}

// eraseUser erases user everywhere (docs/storage.md#retention-and-erasure), in this order:
//
//  1. refuse (nothing done) when storage is off, down or cannot erase;
//  2. remove the user from every group, as a leave does: every node's registry drops
//     the membership at once (the cluster bus) and the members are told (cmd 10);
//  3. close every connection of the user on every node, with ReasonErased;
//  4. remove the stored data in one storage call (the memberships with it);
//  5. sweep: a device that logged in again during 3-4 is closed again, and the groups it
//     joined meanwhile (JWT groups) are left again, in storage too.
//
// Memberships go before the connections so that the members get one cmd 10 (the leave)
// and not also the offline notice of the last connection closing.
func (a *App) eraseUser(ctx context.Context, user string) (any, int) {
	if a.storage == nil {
		return map[string]any{"error": "storage is off (storage.plugin: none): nothing is stored"}, http.StatusConflict
	}
	svc := store.NewService(a.storage)
	if user == "" {
		return map[string]any{"error": "erase: empty user"}, http.StatusBadRequest
	}
	if err := svc.Erasable(ctx); err != nil {
		return eraseFailure(a, user, err, nil)
	}
	// Once begun, the erasure runs to its end even if the caller goes away (the storage
	// calls have their own timeouts).
	ctx = context.WithoutCancel(ctx)
	out := erased{User: user}
	out.Groups = a.gw.LeaveAll(ctx, user, false)
	out.Disconnected = a.gw.Kick(ctx, user, gateway.ReasonErased)
	res, err := svc.Erase(ctx, user)
	if err != nil {
		return eraseFailure(a, user, err, &out)
	}
	out.Removed = res
	again := a.gw.LeaveAll(ctx, user, true)
	if n := a.gw.Kick(ctx, user, gateway.ReasonErased); n > 0 || len(again) > 0 {
		a.log.Info("erase user: closed what logged in during the erasure", "user", user,
			"connections", n, "groups", again)
	}
	for _, g := range again {
		if !slices.Contains(out.Groups, g) {
			out.Groups = append(out.Groups, g)
		}
	}
	slices.Sort(out.Groups)
	a.log.Info("user erased", "user", user, "messages", res.Messages, "inbox", res.Inbox,
		"conversations", res.Conversations, "groups", res.Groups, "disconnected", out.Disconnected)
	return out, http.StatusOK
}

// eraseFailure answers a failed erasure. done is what was done before the storage call
// failed (nil: nothing); it is in the answer so that the caller knows a retry is needed
// for the stored data only.
func eraseFailure(a *App, user string, err error, done *erased) (any, int) {
	body := map[string]any{"error": err.Error()}
	if done != nil {
		body["disconnected"], body["groups"] = done.Disconnected, done.Groups
	}
	switch {
	case errors.Is(err, storage.ErrInvalid):
		return body, http.StatusBadRequest
	case errors.Is(err, storage.ErrUnsupported):
		body["error"] = "the storage plugin does not implement erasure: " + err.Error()
		return body, http.StatusNotImplemented
	}
	a.log.Warn("erase user failed", "user", user, "err", err)
	return body, http.StatusServiceUnavailable
}
