package app

import (
	"reflect"

	"github.com/timgw/timgw/core/codecplugin"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/transport"
)

// startCodecs starts the codec plugins named under codecs:, hands their protocols to the
// transport, and registers their reload step and status.
func (a *App) startCodecs(cfg *config.Config) error {
	m, err := codecplugin.Start(cfg.Codecs, codecplugin.Options{
		Logger: a.log, MaxFrame: cfg.Limits.MaxFrameBytes, SetProtocols: a.srv.SetProtocols,
	})
	if err != nil {
		return err
	}
	a.codecs = m
	a.AddStatus("codecs", func() any { return m.Status() })
	a.AddReloadStep("codecs", func(old, cur *config.Config) (func() []string, func(), error) {
		if reflect.DeepEqual(old.Codecs, cur.Codecs) {
			return nil, nil, nil
		}
		// New and changed plugins start now: one that cannot start refuses the reload.
		plan, err := m.Prepare(cur.Codecs)
		if err != nil {
			return nil, nil, err
		}
		return func() []string {
			changes := plan.Commit()
			out := make([]string, 0, len(changes))
			for _, c := range changes {
				out = append(out, "codecs: "+c)
			}
			return out
		}, plan.Rollback, nil
	})
	return nil
}

// codecListens are the dedicated ports of the codec plugins (codecs.plugins[].listen),
// each serving its plugin's protocol alone.
func codecListens(cfg *config.Config) []listenSpec {
	var out []listenSpec
	for _, p := range cfg.Codecs.Plugins {
		for _, addr := range p.Listen {
			out = append(out, listenSpec{transport.Mode(p.Name), addr})
		}
	}
	return out
}

// CodecPlugins is the codec plugin manager: its Status and Restart serve the admin API.
func (a *App) CodecPlugins() *codecplugin.Manager { return a.codecs }
