package app

import (
	"context"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/memtrim"
)

// startMemTrim starts giving free memory back to the OS when the gateway is quiet
// (runtime.idle_trim), reloadable.
func (a *App) startMemTrim(cfg *config.Config) {
	t := memtrim.New(memtrim.Options{Quiet: cfg.Runtime.IdleTrim, Logger: a.log,
		Activity: func() uint64 { st := a.srv.Stats(); return st.PacketsIn.Load() + st.PacketsOut.Load() }})
	ctx, cancel := context.WithCancel(context.Background())
	a.trimStop = cancel
	go t.Run(ctx)
	a.AddReloadStep("runtime.idle_trim", StepFunc(func(old, cur *config.Config) (Change, error) {
		if old.Runtime.IdleTrim == cur.Runtime.IdleTrim {
			return NoChange, nil
		}
		return CommitFunc(func() []string {
			t.SetQuiet(cur.Runtime.IdleTrim)
			return []string{"runtime.idle_trim"}
		}), nil
	}))
}
