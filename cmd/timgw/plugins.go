package main

import (
	"github.com/timgw/timgw/core/pluginhost"
	"github.com/timgw/timgw/plugins/codec"
	"github.com/timgw/timgw/plugins/codec-mqtt/mqtt"
	storagebolt "github.com/timgw/timgw/plugins/storage-bolt"
	storagemongo "github.com/timgw/timgw/plugins/storage-mongo"
)

// builtins are the plugins compiled into timgw, one line each. The configuration names
// them (storage.plugin: bolt, codecs.plugins[].builtin: codec-mqtt) and timgw runs
// itself as the plugin process, `timgw __plugin KIND NAME`: no separate build needed.
// To ship another plugin in the binary, add its line here; the gateway's packages
// (core/) import no plugin implementation.
var builtins = []pluginhost.Builtin{
	{Kind: pluginhost.Storage, Name: "bolt", Main: storagebolt.Main},
	{Kind: pluginhost.Storage, Name: "mongo", Main: storagemongo.Main},
	{Kind: pluginhost.Codec, Name: "codec-mqtt", Main: func() { codec.Serve(mqtt.New()) }},
}

func init() { pluginhost.Register(builtins...) }
