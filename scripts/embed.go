// Package scripts holds timgw's shipped Lua hook scripts (see README.md). They are
// embedded in the binary so the gateway runs its default hooks with no file on disk;
// a scripts directory on disk, when present, takes their place and is watched.
package scripts

import "embed"

// FS holds the shipped *.lua files.
//
//go:embed *.lua
var FS embed.FS
