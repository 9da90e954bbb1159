package pluginhost

import "os/exec"

// Tie sets a plugin command's process attributes: the plugin gets its own process group,
// so that a signal meant for the gateway's group (Ctrl-C in a terminal, a service
// manager's SIGTERM) reaches the gateway alone, which then stops its plugins in order
// (storage last) instead of seeing them die and restarting them mid-shutdown. On Linux
// the kernel also kills the plugin when the gateway dies, even by SIGKILL.
func Tie(cmd *exec.Cmd) { tie(cmd) }
