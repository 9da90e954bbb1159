package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
)

// TestLogFormatJSONEveryLine: with log.format json, every line the gateway writes (stdout
// and stderr: its own, gnet's, hertz's, the plugins') is a JSON object, from start to
// shutdown; gnet's and hertz's lines are among them, tagged with their component.
func TestLogFormatJSONEveryLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "timgw.yaml")
	conf := `listen: "127.0.0.1:0"
api:
  keys: ["` + testAPIKey + `"]
log:
  level: debug
  format: json
storage:
  dir: "` + filepath.Join(dir, "data") + `"
codecs:
  plugins:
    - name: mqtt
      builtin: codec-mqtt
`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startTestGateway(t, "logjson", gwConfig{File: file})

	aliceID, bobID := uid("alice"), uid("bob")
	alice, bob := g.login(t, epTCP, aliceID), g.login(t, epWS, bobID)
	r, err := alice.ChatTo(bobID, "hello", wait)
	mustCode(t, "chat", r, err, packet.StatusOK)
	mustRecvChat(t, bob, "bob")
	if res, err := g.api(t, epHTTP).Get("/no-such-page"); err != nil || res.Status != 404 {
		t.Fatalf("GET /no-such-page: %v %v", res, err)
	}
	alice.Close()
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}

	log := g.log.From(0)
	components := map[string]bool{}
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("line %d is not JSON (%v): %s", i+1, err, line)
			continue
		}
		if c, ok := rec["component"].(string); ok {
			components[c] = true
		}
	}
	for _, c := range []string{"gnet", "hertz"} {
		if !components[c] {
			t.Errorf("no JSON line with component %q among %d lines", c, len(lines))
		}
	}
	if !strings.Contains(log, `"msg":"stopped"`) {
		t.Errorf("the log does not reach the end of shutdown:\n%s", log)
	}
}
