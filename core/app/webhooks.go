package app

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/webhook"
)

// webhookDir is the webhook queue's directory: webhooks.queue.dir, else webhooks/ in
// the storage directory, else "" (a temporary directory: storage is off, nothing
// survives a restart anyway).
func webhookDir(cfg *config.Config) string {
	switch {
	case cfg.Webhooks.Queue.Dir != "":
		return cfg.Webhooks.Queue.Dir
	case cfg.Storage.Enabled():
		return filepath.Join(cfg.Storage.Resolved().Dir, "webhooks")
	}
	return ""
}

// startWebhooks starts the webhook dispatcher (always: a reload may add endpoints; with
// none it opens nothing and the gateway builds no events), its /admin/status part and its
// reload step.
func (a *App) startWebhooks(cfg *config.Config) error {
	node := ""
	if a.cluster != nil {
		node = a.cluster.ID()
	}
	d, err := webhook.New(webhook.Options{Config: cfg.Webhooks, Dir: webhookDir(cfg), Node: node, Logger: a.log,
		Registerer: a.metrics.Registry, Hooks: a.hooks})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	a.webhooks = d
	a.AddStatus("webhooks", func() any { return a.webhooks.Status() })
	return nil
}

// addWebhookStep registers the reload step of the webhooks section: endpoints, secrets,
// retries, the queue bound and group_max_members apply live; the queue directory is the
// one of the start (restartOnly reports a change).
func (a *App) addWebhookStep() {
	a.AddReloadStep("webhooks", StepFunc(func(old, cur *config.Config) (Change, error) {
		if reflect.DeepEqual(old.Webhooks, cur.Webhooks) {
			return NoChange, nil
		}
		if err := a.webhooks.Prepare(cur.Webhooks); err != nil {
			return nil, err
		}
		return CommitFunc(func() []string {
			a.webhooks.SetConfig(cur.Webhooks)
			a.gw.SetEventGroupMax(cur.Webhooks.GroupMaxMembers)
			return []string{"webhooks"}
		}), nil
	}))
}

// stopWebhooks persists the events not yet queued and stops delivering.
func (a *App) stopWebhooks(ctx context.Context) error {
	if a.webhooks == nil {
		return nil
	}
	return a.webhooks.Close(ctx)
}
