package pluginhost

import (
	"os/exec"
	"syscall"
	"testing"
)

func TestTieGivesOwnGroupAndDeathSignal(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	Tie(cmd)
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	defer cmd.Process.Kill()
	pgid, err := syscall.Getpgid(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != cmd.Process.Pid || pgid == syscall.Getpgrp() {
		t.Fatalf("plugin pgid %d, want its own group %d (gateway's is %d)", pgid, cmd.Process.Pid, syscall.Getpgrp())
	}
	if cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL {
		t.Fatal("no parent-death signal")
	}
}
