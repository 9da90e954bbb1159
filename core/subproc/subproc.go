// Package subproc ties plugin subprocesses to the gateway's life. A plugin gets its own
// process group, so that a signal meant for the gateway's group (Ctrl-C in a terminal, a
// service manager's SIGTERM) reaches the gateway alone, which then stops its plugins in
// order (storage last) instead of seeing them die and restarting them mid-shutdown. On
// Linux the kernel also kills the plugin when the gateway dies, even by SIGKILL.
package subproc

import "os/exec"

// Tie sets cmd's process attributes as described in the package comment.
func Tie(cmd *exec.Cmd) { tie(cmd) }
