package integration

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/plugins/codec-mqtt/mqtt"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
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

// nonLoopbackIP returns an IPv4 address of this machine that is not loopback, or skips t.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}

// TestSafeDefaults starts the gateway with the shipped defaults and an extra HTTP port on
// all interfaces: it warns once per risk (development API key, development admin key,
// open auth beyond loopback); the development keys work from 127.0.0.1 and are refused,
// with the reason, from the machine's own non-loopback address.
func TestSafeDefaults(t *testing.T) {
	t.Parallel()
	free, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(free)
	g := startTestGateway(t, "safe", gwConfig{File: writeConfig(t,
		"storage: {plugin: none}\nlisteners: [{protocol: http, address: \"0.0.0.0:"+port+"\"}]\n")})

	log := g.log.From(0)
	for _, w := range []string{
		`msg="api.keys holds a development key`,
		`msg="admin.keys holds a development key`,
		`msg="auth.mode is open on addresses beyond loopback`,
	} {
		if n := strings.Count(log, w); n != 1 {
			t.Errorf("log has %d lines with %s, want 1 (level WARN); log:\n%s", n, w, log)
		}
	}
	if !strings.Contains(log, "level=WARN msg=\"auth.mode is open") || !strings.Contains(log, "0.0.0.0:"+port) {
		t.Errorf("the open-auth warning is not a WARN naming 0.0.0.0:%s", port)
	}

	ip := nonLoopbackIP(t)
	for _, tc := range []struct {
		host   string
		status int
	}{{"127.0.0.1", http.StatusOK}, {ip, http.StatusUnauthorized}} {
		api := timclient.NewAPI("http://"+net.JoinHostPort(tc.host, port), "dev-api-key", nil)
		r, err := api.Get("/api/v1/users")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != tc.status {
			t.Errorf("API with dev-api-key from %s: %s, want %d", tc.host, r, tc.status)
		}
		api.Key = ""
		a, err := api.Do(http.MethodGet, "/admin/status", nil, "X-Admin-Key", "dev-admin-key")
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != tc.status {
			t.Errorf("admin with dev-admin-key from %s: %s, want %d", tc.host, a, tc.status)
		}
		api.CloseIdle()
		if tc.status == http.StatusOK {
			continue
		}
		for _, res := range []*timclient.APIResult{r, a} {
			var body struct {
				Code int    `json:"code"`
				Msg  string `json:"msg"`
			}
			if err := json.Unmarshal(res.Body, &body); err != nil || body.Code != int(packet.StatusAuthFailed) ||
				!strings.Contains(body.Msg, "accepted only from loopback clients, not from "+ip) {
				t.Errorf("refusal %s: want code 10010 saying development keys are loopback-only (%v)", res, err)
			}
		}
	}
}

// TestErrorTextsAndShape checks that a bad t-im body is answered in the client's terms
// (the field at fault, no Go type name), and that the HTTP API and the admin endpoints
// refuse in one JSON shape, {"code","msg","data"}, with one status scheme.
func TestErrorTextsAndShape(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)

	for _, ep := range []endpoint{epTCP, epWS} {
		c := g.dial(t, ep)
		r, err := c.Request(packet.CmdLoginReq, `{"userId":{},"password":"x"}`, wait)
		if err != nil {
			t.Fatal(err)
		}
		if r.Code != packet.StatusInvalidBody || !strings.Contains(r.Msg, `field "userId"`) ||
			strings.Contains(r.Msg, "packet.") || strings.Contains(r.Msg, "*") {
			t.Errorf("%s: bad login body answered %d %q, want 10020 naming the field, no Go type", ep, r.Code, r.Msg)
		}
	}

	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	defer api.CloseIdle()
	shape := func(what string, r *timclient.APIResult, status int, code packet.Status) {
		t.Helper()
		var body map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Errorf("%s: not JSON: %s", what, r)
			return
		}
		var c packet.Status
		_ = json.Unmarshal(body["code"], &c)
		if r.Status != status || c != code || len(body) != 3 || body["msg"] == nil || string(body["data"]) != "null" {
			t.Errorf("%s: %s, want HTTP %d {\"code\":%d,\"msg\":...,\"data\":null}", what, r, status, code)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || r.Header.Get("WWW-Authenticate") == "" && status == 401 {
			t.Errorf("%s: headers %v", what, r.Header)
		}
	}
	r, err := api.Get("/api/v1/users")
	if err != nil {
		t.Fatal(err)
	}
	shape("API without a key", r, http.StatusUnauthorized, packet.StatusAuthFailed)
	for _, p := range []struct{ method, path string }{{http.MethodGet, "/admin/status"}, {http.MethodPost, "/admin/reload"}, {http.MethodGet, "/metrics"}} {
		if r, err = api.Do(p.method, p.path, nil); err != nil {
			t.Fatal(err)
		}
		shape("admin "+p.path+" without a key", r, http.StatusUnauthorized, packet.StatusAuthFailed)
		if r, err = api.Do(p.method, p.path, nil, "X-Admin-Key", "wrong"); err != nil {
			t.Fatal(err)
		}
		shape("admin "+p.path+" with a wrong key", r, http.StatusUnauthorized, packet.StatusAuthFailed)
	}
	api.Key = testAPIKey
	if r, err = api.Post("/api/v1/messages", `{"from":"a","to":"b","chatType":2,"content":5}`); err != nil {
		t.Fatal(err)
	}
	shape("API bad body", r, http.StatusBadRequest, packet.StatusInvalidBody)
	if !strings.Contains(string(r.Body), `field \"content\": expected a string`) {
		t.Errorf("API bad body: %s, want the field at fault", r)
	}
}

// TestPerIPConnectionLimits opens more connections from 127.0.0.1 than
// limits.max_connections_per_ip allows: the extra one is closed while the others keep
// chatting, the refusal is counted in timgw_connections_refused_total, a reload raises
// the cap, a closed connection makes room; then limits.connection_rate_per_ip, set by a
// reload, closes connections beyond its burst.
func TestPerIPConnectionLimits(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "perip", gwConfig{})
	cfg.Set("storage.plugin", "none")
	cfg.Set("limits.max_connections_per_ip", 3)
	cfg.Write(t, byRename)
	g := startTestGateway(t, "perip", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)

	refusedAt := func(reason string) float64 {
		t.Helper()
		m, err := adm.metrics()
		if err != nil {
			t.Fatal(err)
		}
		v, ok := m[`timgw_connections_refused_total{reason="`+reason+`"}`]
		if !ok {
			t.Fatalf("no timgw_connections_refused_total{reason=%q} in /metrics", reason)
		}
		return v
	}
	mustBeRefused := func(what string) {
		t.Helper()
		c := g.dial(t, epTCP)
		_ = c.Send(packet.CmdLoginReq, packet.Login{UserID: packet.Str(uid("extra")), Password: "x"})
		got, err := c.ExpectClosed(wait)
		if err != nil || len(got) != 0 {
			t.Fatalf("%s: want the connection closed unanswered; got %s, %v", what, timclient.Describe(got), err)
		}
	}

	users := make([]string, 3)
	conns := make([]*timclient.Conn, 3)
	for i := range users {
		users[i] = uid("perip")
		conns[i] = g.login(t, epTCP, users[i])
	}
	before := refusedAt("max_connections_per_ip")
	mustBeRefused("a 4th connection with max_connections_per_ip 3")
	if after := refusedAt("max_connections_per_ip"); after != before+1 {
		t.Errorf("refusals counted %v, want %v", after, before+1)
	}
	r, err := conns[0].ChatTo(users[1], "still here", wait)
	mustCode(t, "chat between connections under the cap", r, err, packet.StatusOK)
	checkChat(t, mustRecvChat(t, conns[1], users[1]), users[0], "still here", packet.ChatTypePrivate)

	cfg.Set("limits.max_connections_per_ip", 5)
	if r := cfg.ApplyByAPI(t, adm, byRename); !r.hasChange("limits") {
		t.Fatalf("reload: %s, want limits changed", r)
	}
	g.login(t, epTCP, uid("perip"))
	g.login(t, epTCP, uid("perip"))
	mustBeRefused("a 6th connection after raising the cap to 5")
	conns[2].Close()
	eventually(t, "a closed connection makes room", func() error {
		c, err := timclient.Dial("tcp://"+g.Addr, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Login(uid("perip"), "x", wait)
		return err
	})

	// The rate: after this reload, at most 5 new connections (the burst; the admin
	// client's own requests may take some) until a token comes back in 1000 s.
	cfg.Set("limits.max_connections_per_ip", 0)
	cfg.Set("limits.connection_rate_per_ip", 0.001)
	cfg.Set("limits.connection_burst_per_ip", 5)
	cfg.ApplyByAPI(t, adm, byRename)
	opened := 0
	for ; opened <= 5; opened++ {
		c := g.dial(t, epTCP)
		if _, err := c.Login(uid("rate"), "x", wait); err != nil {
			if _, err := c.ExpectClosed(wait); err != nil {
				t.Fatalf("connection %d failed to log in but stays open: %v", opened+1, err)
			}
			break
		}
	}
	if opened > 5 {
		t.Fatalf("%d connections opened within the burst of 5 at 0.001/s", opened)
	}
	r, err = conns[0].ChatTo(users[1], "after the rate refusals", wait)
	mustCode(t, "chat after the rate refusals", r, err, packet.StatusOK)
}
