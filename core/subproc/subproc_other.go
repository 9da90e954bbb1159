//go:build !linux

package subproc

import "os/exec"

// tie does nothing where the kernel has no parent-death signal: a plugin may outlive a
// gateway killed by force.
func tie(*exec.Cmd) {}
