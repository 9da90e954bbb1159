// Package conf holds timgw's shipped configuration files. The default configuration is
// embedded in the binary, so the gateway runs with no file on disk.
package conf

import _ "embed"

// Default is conf/timgw.yaml as shipped.
//
//go:embed timgw.yaml
var Default []byte
