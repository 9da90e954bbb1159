package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestScriptTestShippedFixtures runs `timgw script-test` on the fixtures of the shipped
// scripts and of the examples (scripts/tests, scripts/examples/tests), as a moderation
// team's CI would: every case passes.
func TestScriptTestShippedFixtures(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binPath, "script-test", "-v", "scripts/tests", "scripts/examples/tests")
	cmd.Dir = moduleRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("timgw script-test scripts/tests scripts/examples/tests: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " 0 failed") || strings.Contains(string(out), "FAIL") {
		t.Fatalf("output:\n%s", out)
	}
}

// TestScriptTestReportsFailures edits a rule so that a fixture no longer holds: the
// command names the case and what differs, and exits 1.
func TestScriptTestReportsFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(moduleRoot, "scripts", "moderation.lua"))
	if err != nil {
		t.Fatal(err)
	}
	// The team "fixes" the rate limit message; the fixture still expects the old text.
	edited := strings.Replace(string(src), "too many messages, slow down", "please wait", 1)
	if edited == string(src) {
		t.Fatal("moderation.lua no longer has the rate limit message this test edits")
	}
	fixture, err := os.ReadFile(filepath.Join(moduleRoot, "scripts", "tests", "moderation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"moderation.lua":        edited,
		"tests/moderation.yaml": string(fixture),
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(binPath, "script-test", filepath.Join(dir, "tests")).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "the sixth message in the window is over the rate limit") ||
		!strings.Contains(string(out), `does not contain "slow down"`) || !strings.Contains(string(out), " 1 failed") {
		t.Fatalf("output does not name the failed case and the difference:\n%s", out)
	}
}
