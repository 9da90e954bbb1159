package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCheck runs `timgw check -config FILE` in dir and returns its stdout, stderr and
// exit code.
func runCheck(t *testing.T, dir, file string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, "check", "-config", file)
	cmd.Dir = dir
	cmd.Env = gatewayEnv()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run timgw check: %v", err)
	}
	return out.String(), errb.String(), code
}

// writeFiles writes name → content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckGoodConfig: the shipped configuration checks out (storage opened, the MQTT
// codec plugin handshaken) and the summary names what would run.
func TestCheckGoodConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stdout, stderr, code := runCheck(t, dir, filepath.Join(moduleRoot, "conf", "timgw.yaml"))
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"listen     :8888",
		"protocols  tcp, ws, http, mqtt",
		"auth       open",
		"development keys dev-api-key, dev-admin-key",
		"storage    bolt, dir data (opened)",
		"hooks      moderation.lua",
		"codecs     mqtt (builtin codec-mqtt) (handshaken)",
		"cluster    off",
		"webhooks   off",
		"configuration ok",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "timgw.db")); err != nil {
		t.Errorf("the bolt store was not opened in the working directory: %v", err)
	}
}

// TestCheckBadConfig: each broken configuration exits non-zero with an error that names
// the problem, and prints no summary.
func TestCheckBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string // timgw.yaml and what it names
		want  []string          // in stderr
	}{
		{"bad YAML", map[string]string{"timgw.yaml": "listen: [\n"},
			[]string{"timgw.yaml", "yaml: line 1"}},
		{"unknown key", map[string]string{"timgw.yaml": "listen: \":0\"\nlistn: \":1\"\n"},
			[]string{"line 2: field listn not found"}},
		{"broken Lua script", map[string]string{
			"timgw.yaml":     "storage:\n  plugin: none\nhooks:\n  dir: lua\n  scripts: [broken.lua]\n",
			"lua/broken.lua": "function on_message(m)\n  return m +\nend\n",
		}, []string{"hooks:", "broken.lua line:3", "syntax error"}},
		{"missing storage plugin command", map[string]string{
			"timgw.yaml": "storage:\n  plugin: external\n  command: [./no-such-storage-plugin]\n",
		}, []string{"storage.command: plugin command", "no-such-storage-plugin"}},
		{"missing codec plugin command", map[string]string{
			"timgw.yaml": "storage:\n  plugin: none\ncodecs:\n  plugins:\n    - name: foo\n      path: ./no-such-codec\n",
		}, []string{"codecs.plugins[0].path: plugin command", "no-such-codec"}},
		{"cluster on storage that is not shared", map[string]string{
			"timgw.yaml": "storage:\n  plugin: external\n  command: [" + binPath + ", __plugin, storage, bolt]\n" +
				"  options: {dir: data}\ncluster:\n  enabled: true\n  node_id: a\n",
		}, []string{"cluster: storage plugin external does not declare its store shared"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			stdout, stderr, code := runCheck(t, dir, "timgw.yaml")
			if code == 0 {
				t.Fatalf("exit 0, want non-zero\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if !strings.Contains(stderr, "timgw: check: config timgw.yaml") {
				t.Errorf("the error does not name the checked file:\n%s", stderr)
			}
			if strings.Contains(stdout, "configuration ok") {
				t.Errorf("a failed check printed ok:\n%s", stdout)
			}
		})
	}
}
