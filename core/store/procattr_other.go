//go:build !linux

package store

import "os/exec"

// setPdeathsig is Linux only; elsewhere a plugin may outlive a killed gateway.
func setPdeathsig(*exec.Cmd) {}
