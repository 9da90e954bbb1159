//go:build !linux

package codecplugin

// processAlive cannot tell elsewhere: every process is taken as alive.
func processAlive(int) bool { return true }
