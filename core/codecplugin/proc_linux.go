package codecplugin

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the plugin when the gateway dies, even by SIGKILL
// (otherwise plugins outlive it under PID 1). Linux ties this to the thread that
// started the process; Go's runtime does not end its threads in normal operation.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processAlive reports whether process pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
