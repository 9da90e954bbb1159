// Package js holds the timgw JavaScript client SDK (src/timgw.js, an ES module, and its
// types src/timgw.d.ts) for the Go side: the gateway embeds the files and serves them at
// /sdk/timgw.js and /sdk/timgw.d.ts (package admin). The SDK itself is documented in
// README.md beside this file.
package js

import _ "embed"

// Module is src/timgw.js, the ES module.
//
//go:embed src/timgw.js
var Module []byte

// Types is src/timgw.d.ts, the module's TypeScript declarations.
//
//go:embed src/timgw.d.ts
var Types []byte
