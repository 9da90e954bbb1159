package store

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the plugin when the gateway dies, even by SIGKILL
// (otherwise it would live on under PID 1 holding the data directory's lock).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
