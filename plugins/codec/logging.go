package codec

import (
	"log/slog"

	"github.com/hashicorp/go-hclog"

	"github.com/timgw/timgw/plugins/codec/pluginlog"
)

// newHclog returns an hclog.Logger writing to l.
func newHclog(l *slog.Logger) hclog.Logger { return pluginlog.Hclog(l) }

// PluginLogger returns the logger a plugin should use: JSON lines on stderr in the shape
// go-plugin parses, so that the host logs them at their level with the plugin's name.
// Serve installs it as slog's default.
func PluginLogger() *slog.Logger { return pluginlog.Plugin() }
