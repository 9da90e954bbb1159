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
		Registerer: a.metrics.Registry, PluginMetrics: a.plugins,
	})
	if err != nil {
		return err
	}
	a.codecs = m
	a.AddStatus("codecs", func() any { return m.Status() })
	a.AddReloadStep("codecs", StepFunc(func(old, cur *config.Config) (Change, error) {
		if reflect.DeepEqual(old.Codecs, cur.Codecs) {
			return NoChange, nil
		}
		// New and changed plugins start now: one that cannot start refuses the reload.
		plan, err := m.Prepare(cur.Codecs)
		if err != nil {
			return nil, err
		}
		return codecChange{plan}, nil
	}))
	return nil
}

// codecChange is a prepared codec plan whose changes are reported under "codecs: ".
type codecChange struct{ *codecplugin.Plan }

var _ Change = codecChange{}

// Commit swaps the plan in.
func (c codecChange) Commit() []string {
	changes := c.Plan.Commit()
	out := make([]string, 0, len(changes))
	for _, ch := range changes {
		out = append(out, "codecs: "+ch)
	}
	return out
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
