// Package pluginhost is how timgw hosts a plugin process, whatever the plugin does
// (storage, codec): one registry of the plugins compiled into the binary and the one
// hidden sub-command that runs them (`timgw __plugin KIND NAME`), one Supervisor that
// keeps a plugin process running (restart with backoff, failed after repeated crashes,
// no restart while stopping), the process attributes that tie a plugin to the gateway
// (own process group, killed with the gateway), and the private directory its Unix
// socket lives in. The storage host (core/store) and the codec host (core/codecplugin)
// add what is theirs: the SDK's handshake, and what a crash means to their clients.
package pluginhost
