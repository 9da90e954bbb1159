package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxPluginLines is the goal for a complete protocol plugin written with the SDK.
const maxPluginLines = 150

// TestCodecPluginOutOfTree builds the template plugin (plugins/codec-line) the way a
// third party would: its main.go alone in a folder outside the repository, with a go.mod
// that requires only the codec SDK module (one replace, to this tree, standing in for
// the published module), tidied and built offline from the module cache. Then the
// gateway runs it and a line client chats with a t-im client.
func TestCodecPluginOutOfTree(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(moduleRoot, "plugins", "codec-line", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(src, []byte("\n")); n > maxPluginLines {
		t.Errorf("plugins/codec-line/main.go has %d lines, the goal is at most %d", n, maxPluginLines)
	}
	dir := t.TempDir()
	goMod := "module example.com/lineplugin\n\ngo 1.26\n\n" +
		"require github.com/timgw/timgw/plugins/codec v0.0.0\n\n" +
		"replace github.com/timgw/timgw/plugins/codec => " + filepath.Join(moduleRoot, "plugins", "codec") + "\n"
	for name, data := range map[string][]byte{"main.go": src, "go.mod": []byte(goMod)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Offline: the SDK's dependencies come from the module cache the gateway's build
	// filled; their checksums are taken from it too (no checksum database offline).
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOWORK=off")
	run := func(args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// -e: tidy also wants the test dependencies of the SDK's dependencies, which a
	// build never needs and an offline cache may lack.
	if out, err := run("mod", "tidy", "-e"); err != nil {
		t.Fatalf("go mod tidy: %v\n%s", err, out)
	}
	tidied, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(tidied), "github.com/timgw/timgw ") || strings.Contains(string(tidied), "github.com/timgw/timgw\n") {
		t.Fatalf("the plugin's go.mod requires the gateway's module:\n%s", tidied)
	}
	bin := filepath.Join(dir, "lineplugin")
	if out, err := run("build", "-o", bin, "."); err != nil {
		if strings.Contains(out, "module lookup disabled") {
			t.Skipf("offline module cache lacks the SDK's dependencies (run `go mod download` in plugins/codec once):\n%s", out)
		}
		t.Fatalf("out-of-tree go build: %v\n%s", err, out)
	}
	lineChat(t, "codec-outoftree", bin)
}
