package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/integration/timclient"
	"github.com/timgw/timgw/plugins/codec-mqtt/mqtt"
)

// Tests of the configuration defaults and the safe defaults (README "Safe defaults").

// writeConfig writes a configuration file of its own for t and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "timgw.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigKeyByKeyDefaults starts the gateway with a file that sets storage only: every
// other key takes its default from the embedded conf/timgw.yaml, so the HTTP API takes
// the key of TIMGW_API_KEY, the admin endpoints the development admin key, and MQTT is
// served on the shared port.
func TestConfigKeyByKeyDefaults(t *testing.T) {
	t.Parallel()
	const key = "key-from-the-environment"
	g := startTestGateway(t, "keybykey", gwConfig{
		File: writeConfig(t, "storage: {plugin: none}\n"),
		Env:  []string{"TIMGW_API_KEY=" + key},
	})

	api := timclient.NewAPI("http://"+g.Addr, key, nil)
	defer api.CloseIdle()
	r, err := api.Get("/api/v1/users?status=online")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK {
		t.Errorf("API with TIMGW_API_KEY: %s, want 200", r)
	}
	api.Key = "dev-api-key"
	if r, err = api.Get("/api/v1/users"); err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("API with dev-api-key while TIMGW_API_KEY is set: %v %v, want 401", r, err)
	}
	api.Key = ""
	if r, err = api.Do(http.MethodGet, "/admin/status", nil, "X-Admin-Key", "dev-admin-key"); err != nil || r.Status != http.StatusOK {
		t.Errorf("admin status with the default admin key: %v %v, want 200", r, err)
	}

	// MQTT (the default codecs section) on the shared port, to a t-im TCP user.
	bob := uid("bob")
	tc := g.login(t, epTCP, bob)
	m := dialMQTT(t, g.Addr, uid("mq"), 60)
	m.send(&mqtt.Packet{Type: mqtt.PUBLISH, Topic: "chat/user/" + bob, Payload: []byte("hello over MQTT")})
	c := mustRecvChat(t, tc, bob)
	if c.Content != "hello over MQTT" || c.ChatType != packet.ChatTypePrivate {
		t.Errorf("bob got %+v", c)
	}
}
