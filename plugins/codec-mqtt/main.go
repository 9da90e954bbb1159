// Command codec-mqtt is timgw's MQTT 3.1.1 codec plugin. timgw starts it (or runs the
// same code from its own binary, with "builtin: codec-mqtt" in the configuration); it
// is not meant to be run by hand. See README.md for the topic layout and what MQTT
// features are supported.
package main

import (
	"github.com/timgw/timgw/plugins/codec"
	"github.com/timgw/timgw/plugins/codec-mqtt/mqtt"
)

func main() { codec.Serve(mqtt.New()) }
