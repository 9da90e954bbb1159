// Package store is the gateway's side of storage: it runs the configured storage plugin
// as a go-plugin subprocess and restarts it when it dies (Supervisor), persists every
// chat before it is delivered (Deliverer, the router's delivery seam), and serves the
// offline, history and recall queries of the command layer (Service).
//
// Built-in plugins (bolt, mongo) are the timgw executable itself started with the hidden
// arguments `__plugin storage NAME` (pluginhost.Main, listed in cmd/timgw/plugins.go); an external plugin is the executable
// named in storage.command. docs/storage.md describes the semantics.
package store
