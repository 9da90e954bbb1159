package main

import (
	"github.com/timgw/timgw/core/codecplugin"
	"github.com/timgw/timgw/plugins/codec"
	"github.com/timgw/timgw/plugins/codec-mqtt/mqtt"
)

// The codec plugins compiled into timgw: `builtin: codec-mqtt` in the configuration
// runs this binary as `timgw __timgw-codec-plugin codec-mqtt`, no separate build needed.
func init() {
	codecplugin.RegisterBuiltin("codec-mqtt", func() { codec.Serve(mqtt.New()) })
}

// runCodecPlugin runs a built-in codec plugin when the process was started as one, and
// reports whether it was.
func runCodecPlugin(args []string) (bool, error) { return codecplugin.RunBuiltin(args) }
