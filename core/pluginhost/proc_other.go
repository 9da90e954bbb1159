//go:build !linux

package pluginhost

import (
	"os"
	"os/exec"
)

// tie does nothing where the kernel has no parent-death signal: a plugin may outlive a
// gateway killed by force.
func tie(*exec.Cmd) {}

// processAlive cannot tell elsewhere: every process is taken as alive.
func processAlive(int) bool { return true }

// killGroup kills process pid (no process groups here).
func killGroup(pid int) error {
	if pid <= 0 {
		return nil
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
