package integration

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the gateway if the test process dies first (a test
// binary killed on timeout must not leave gateways listening).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
