package integration

// End-to-end tests of configuration reloads, the admin endpoints and graceful shutdown
// (issue 6). Each test runs a gateway with a configuration file of its own and edits it
// while TCP, WebSocket and TLS clients stay logged in: the file is written to a temporary
// file and renamed over the original, as editors do, or rewritten in place. After every
// reload, good or refused, the same connections must answer a heartbeat and exchange
// chats (fleet.check). Waits poll with a deadline (eventually, adminClient.waitReload).

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestReloadLiveChanges applies each kind of live change to a running gateway and
// checks that it takes effect while the connected clients stay: a dedicated tcp
// listener added and removed, limits.max_content_bytes lowered, api.keys replaced,
// log.level changed, the TLS certificate rotated (files replaced in place and reloaded
// with POST /admin/reload or SIGHUP; files at new names in the configuration), and auth
// switched from open to jwt.
func TestReloadLiveChanges(t *testing.T) {
	t.Parallel()
	top := t
	cfg := newLiveConfig(t, "reload-live", gwConfig{})
	certA := newRotCert(t, filepath.Join(cfg.Dir, "gen-a"))
	certB := newRotCert(t, filepath.Join(cfg.Dir, "gen-b"))
	certC := newRotCert(t, filepath.Join(cfg.Dir, "gen-c"))
	certD := newRotCert(t, filepath.Join(cfg.Dir, "gen-d"))
	tlsCfg := trusting(certA, certB, certC, certD)
	certFile, keyFile := filepath.Join(cfg.Dir, "tls.crt"), filepath.Join(cfg.Dir, "tls.key")
	certA.install(t, certFile, keyFile)
	cfg.Set("tls", map[string]any{"cert": certFile, "key": keyFile})
	cfg.Write(t, byRename)

	g := startTestGateway(t, "reload-live", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	f := &fleet{}
	tcp := f.join(t, g, epTCP, tlsCfg)
	ws := f.join(t, g, epWS, tlsCfg)
	f.join(t, g, epTLS, tlsCfg)
	f.join(t, g, epWSS, tlsCfg)
	f.check(t, "the start")
	startVersion := adm.status(t).Config.Version

	// keep closes c when the whole test ends (connections made in a subtest outlive it).
	keep := func(c *timclient.Conn) { top.Cleanup(func() { c.Close() }) }

	// tlsSerial opens a new TLS connection to the shared port, logs in on it (it is
	// served) and returns the serial number of the certificate it was shown.
	tlsSerial := func() (*big.Int, error) {
		c, err := timclient.Dial(epURL(epTLS, g.Addr), &timclient.Options{TLSConfig: tlsCfg})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		s, err := peerSerial(c)
		if err != nil {
			return nil, err
		}
		if _, err := c.Login(uid("tls-probe"), "x", wait); err != nil {
			return nil, err
		}
		return s, nil
	}
	waitSerial := func(t *testing.T, want rotCert, what string) {
		t.Helper()
		eventually(t, what, func() error {
			s, err := tlsSerial()
			if err != nil {
				return err
			}
			if s.Cmp(want.Serial()) != 0 {
				return fmt.Errorf("a new TLS connection is shown the certificate with serial %x, want %x (serials: A %x, B %x, C %x, D %x)",
					s, want.Serial(), certA.Serial(), certB.Serial(), certC.Serial(), certD.Serial())
			}
			return nil
		})
	}

	t.Run("tcp listener added then removed", func(t *testing.T) {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Set("listeners", []any{map[string]any{"protocol": "tcp", "address": addr}})
		r := cfg.ApplyByWatcher(t, adm, byRename)
		if !r.hasChange("listeners: +tcp " + addr) {
			t.Errorf("reload %s: want the change %q", r, "listeners: +tcp "+addr)
		}
		user := uid("added-port")
		dc, err := timclient.Dial(epTCP.url(addr, ""), nil)
		if err != nil {
			t.Fatalf("the added tcp port: %v", err)
		}
		keep(dc)
		mustLogin(t, dc, user)
		f.add("tcp on the added port", user, dc)
		f.check(t, "adding a tcp listener")

		cfg.Set("listeners", []any{})
		r = cfg.ApplyByWatcher(t, adm, inPlace)
		if !r.hasChange("listeners: -tcp " + addr) {
			t.Errorf("reload %s: want the change %q", r, "listeners: -tcp "+addr)
		}
		eventually(t, "the removed port refuses new connections", func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return nil
			}
			c.Close()
			return fmt.Errorf("%s still accepts connections", addr)
		})
		// The fleet holds the connection accepted on the removed port: it stays open.
		f.check(t, "removing the tcp listener")
	})

	t.Run("limits.max_content_bytes lowered", func(t *testing.T) {
		send := func(t *testing.T, from, to *fleetMember, content string, want packet.Status) {
			t.Helper()
			r, err := from.C.ChatTo(to.User, content, wait)
			mustCode(t, fmt.Sprintf("a %d-byte chat from the %s client", len(content), from.Name), r, err, want)
			if want == packet.StatusOK {
				if m := mustRecvChat(t, to.C, "the "+to.Name+" client"); m.Content != content {
					t.Errorf("the %s client got %d bytes of content, want %d", to.Name, len(m.Content), len(content))
				}
			}
		}
		big := strings.Repeat("b", 800)
		send(t, tcp, ws, big, packet.StatusOK)
		send(t, ws, tcp, big, packet.StatusOK)

		cfg.Set("limits.max_content_bytes", 512)
		r := cfg.ApplyByWatcher(t, adm, inPlace)
		if !r.hasChange("limits") {
			t.Errorf("reload %s: want the change %q", r, "limits")
		}
		send(t, tcp, ws, big, packet.StatusTooLarge)
		send(t, ws, tcp, big, packet.StatusTooLarge)
		send(t, tcp, ws, strings.Repeat("c", 512), packet.StatusOK) // at the new limit
		f.check(t, "lowering limits.max_content_bytes")
	})

	t.Run("api.keys replaced", func(t *testing.T) {
		const newKey = "reload-rotated-api-key"
		path := "/api/user/online?userid=" + tcp.User
		get := func(key string) *timclient.APIResult {
			t.Helper()
			api := timclient.NewAPI("http://"+g.Addr, key, nil)
			defer api.CloseIdle()
			r, err := api.Get(path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			return r
		}
		if r := get(testAPIKey); r.Status != http.StatusOK {
			t.Fatalf("GET %s with the configured API key: %s, want 200", path, r)
		}
		cfg.Set("api.keys", []any{newKey})
		r := cfg.ApplyByWatcher(t, adm, byRename)
		if !r.hasChange("api.keys") {
			t.Errorf("reload %s: want the change %q", r, "api.keys")
		}
		if r := get(testAPIKey); r.Status != http.StatusUnauthorized {
			t.Errorf("GET %s with the removed API key: %s, want 401", path, r)
		}
		if r := get(newKey); r.Status != http.StatusOK {
			t.Errorf("GET %s with the new API key: %s, want 200", path, r)
		}
		f.check(t, "replacing api.keys")
	})

	t.Run("log.level changed", func(t *testing.T) {
		// The files start at debug. At warn, a skipped reload (logged at debug) must not
		// be logged; back at debug, it must.
		off := g.log.Len()
		cfg.Set("log.level", "warn")
		if r := cfg.ApplyByAPI(t, adm, byRename); !r.hasChange("limits") { // the limits step sets the level
			t.Errorf("reload to log.level warn: %s, want the change %q", r, "limits")
		}
		if r := adm.mustReload(t, http.StatusOK); !r.Skipped {
			t.Errorf("reload without a change: %s, want skipped", r)
		}
		cfg.Set("log.level", "debug")
		back := cfg.ApplyByAPI(t, adm, inPlace)
		if !back.hasChange("limits") {
			t.Errorf("reload to log.level debug: %s, want the change %q", back, "limits")
		}
		if r := adm.mustReload(t, http.StatusOK); !r.Skipped {
			t.Errorf("reload without a change: %s, want skipped", r)
		}
		const skipped = `msg="config reload skipped: nothing changed" trigger=api`
		var log string
		eventually(t, "the skipped reload at level debug is logged", func() error {
			log = g.log.From(off)
			if !strings.Contains(log, skipped) {
				return errors.New("no line " + skipped + " in the gateway log yet")
			}
			return nil
		})
		// The log is written in order: everything before the last line is there.
		backLine := `msg="config reloaded" trigger=` + back.Trigger + ` version=` + back.Version
		i := strings.Index(log, backLine)
		switch {
		case i < 0:
			t.Errorf("no log line %q for the reload back to debug", backLine)
		case strings.Contains(log[:i], "config reload skipped"):
			t.Errorf("at log.level warn, a skipped reload was logged at debug level:\n%s", log[:i])
		}
		f.check(t, "changing log.level")
	})

	t.Run("tls certificate files replaced then POST /admin/reload", func(t *testing.T) {
		waitSerial(t, certA, "new TLS connections are shown certificate A")
		certB.install(t, certFile, keyFile)
		code, r := adm.reload(t)
		if code != http.StatusOK || !r.hasChange("tls") {
			t.Errorf("POST /admin/reload after replacing the certificate files (same names in the configuration): HTTP %d %s, want 200 and the change \"tls\" (the files are read again at every reload)", code, r)
		}
		waitSerial(t, certB, "new TLS connections are shown the new certificate B")
		// The fleet's TLS clients, connected with certificate A, stay.
		f.check(t, "rotating the certificate")
	})

	t.Run("tls certificate files replaced then SIGHUP", func(t *testing.T) {
		certC.install(t, certFile, keyFile)
		mark := time.Now()
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		r := adm.waitReload(t, mark, "SIGHUP reloads", func(r reloadResult) bool { return r.Trigger == "signal" })
		if r.Error != "" || !r.hasChange("tls") {
			t.Errorf("reload on SIGHUP after replacing the certificate files: %s, want the change \"tls\"", r)
		}
		waitSerial(t, certC, "new TLS connections are shown the new certificate C")
		f.check(t, "rotating the certificate with SIGHUP")
	})

	t.Run("tls certificate at new file names", func(t *testing.T) {
		newCert, newKey := filepath.Join(cfg.Dir, "tls-d.crt"), filepath.Join(cfg.Dir, "tls-d.key")
		certD.install(t, newCert, newKey)
		cfg.Set("tls", map[string]any{"cert": newCert, "key": newKey})
		r := cfg.ApplyByWatcher(t, adm, byRename)
		if !r.hasChange("tls") {
			t.Errorf("reload %s: want the change %q", r, "tls")
		}
		waitSerial(t, certD, "new TLS connections are shown certificate D")
		f.check(t, "pointing tls at new certificate files")
	})

	t.Run("auth open to jwt", func(t *testing.T) {
		const secret = "reload-jwt-secret"
		cfg.Set("auth", map[string]any{"mode": "jwt", "jwt": map[string]any{"secret": secret}})
		r := cfg.ApplyByWatcher(t, adm, inPlace)
		if !r.hasChange("auth") {
			t.Errorf("reload %s: want the change %q", r, "auth")
		}
		for _, ep := range []endpoint{epTCP, epWS} {
			c := dialWith(t, epURL(ep, g.Addr), nil)
			resp, err := c.Request(packet.CmdLoginReq, packet.Login{UserID: packet.Str(uid("password-user")), Password: "x"}, wait)
			mustCode(t, "a password login over "+string(ep)+" after the switch to jwt", resp, err, packet.StatusLoginFailed)
		}
		user := uid("token-user")
		c, err := timclient.Dial(epURL(epWS, g.Addr), nil)
		if err != nil {
			t.Fatal(err)
		}
		keep(c)
		if _, err := c.LoginToken(makeToken(t, secret, user, time.Now().Add(time.Hour)), wait); err != nil {
			t.Fatalf("a token login after the switch to jwt: %v", err)
		}
		f.add("ws logged in with a token", user, c)
		// The clients that logged in with passwords before the switch stay.
		f.check(t, "switching auth from open to jwt")
	})

	if v := adm.status(t).Config.Version; v == startVersion {
		t.Errorf("config version still %s after the edits", v)
	}
}

// TestReloadRefusesBadEdits writes bad configurations under a running gateway: a YAML
// syntax error, an unknown key, a missing certificate file, a listener on a port in
// use, and a codec plugin whose executable does not exist. Each must be refused (POST
// /admin/reload answers 422 with an error naming the problem; the watcher's reload of
// the file is refused too), be listed in /admin/status config.reloads, and leave the
// running configuration (its version, its limits) and the clients as they were.
func TestReloadRefusesBadEdits(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "reload-bad", gwConfig{})
	g := startTestGateway(t, "reload-bad", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	f := &fleet{}
	tcp := f.join(t, g, epTCP, nil)
	ws := f.join(t, g, epWS, nil)
	f.check(t, "the start")
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().String()

	// Every bad file also lowers limits.max_content_bytes to 100: a 600-byte chat still
	// accepted afterwards shows that the old configuration (1024) keeps serving.
	bad := func(edit func(c *liveConfig)) func(t *testing.T) string {
		return func(t *testing.T) string {
			c := cfg.Clone(t)
			c.Set("limits.max_content_bytes", 100)
			edit(c)
			return c.Render(t)
		}
	}
	cases := []struct {
		name    string
		how     writeMode
		content func(t *testing.T) string
		want    []string // what the error must name
	}{
		{"YAML syntax error", inPlace,
			func(t *testing.T) string { return bad(func(*liveConfig) {})(t) + "extra: [1, 2\n" },
			[]string{"yaml", "line"}},
		{"unknown key", byRename,
			bad(func(c *liveConfig) { c.Set("limits.max_conent_bytes", 100) }),
			[]string{"max_conent_bytes"}},
		{"missing certificate file", inPlace,
			bad(func(c *liveConfig) {
				c.Set("tls", map[string]any{"cert": filepath.Join(c.Dir, "missing-cert.pem"), "key": filepath.Join(c.Dir, "missing-key.pem")})
			}),
			[]string{"missing-cert.pem"}},
		{"listener on a port in use", byRename,
			bad(func(c *liveConfig) { c.Set("listeners", []any{map[string]any{"protocol": "tcp", "address": busy}}) }),
			[]string{busy, "address already in use"}},
		{"codec plugin with a broken path", inPlace,
			bad(func(c *liveConfig) {
				c.Set("codecs.plugins", []any{map[string]any{"name": "brokencodec", "path": filepath.Join(c.Dir, "no-such-codec-plugin")}})
			}),
			[]string{"no-such-codec-plugin"}},
	}
	good := []byte(cfg.Render(t))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Whatever happens, put the good file back and wait until the gateway has
			// looked at it, so that the next case starts from it.
			t.Cleanup(func() {
				if err := restoreConfig(adm, cfg.Path, good); err != nil {
					t.Errorf("restoring the good configuration: %v", err)
				}
			})
			before := adm.status(t).Config.Version
			mark := time.Now()
			writeFileAs(t, cfg.Path, []byte(tc.content(t)), tc.how)
			code, r := adm.reload(t)
			refused := code == http.StatusUnprocessableEntity && r.Error != ""
			if !refused {
				t.Errorf("POST /admin/reload of the bad file (%s): HTTP %d %s, want 422 with an error naming %q", tc.how, code, r, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Error, w) {
					t.Errorf("reload error %q does not name %q", r.Error, w)
				}
			}
			if r.Version != before {
				t.Errorf("reload answer version %s, want the running %s", r.Version, before)
			}
			fw := adm.waitReload(t, mark, "the directory watcher's reload of the bad file",
				func(r reloadResult) bool { return r.Trigger == "file" })
			if fw.Error == "" {
				t.Errorf("the watcher's reload of the bad file: %s, want an error", fw)
			}
			st := adm.status(t)
			if st.Config.Version != before {
				t.Errorf("config version %s after the bad edit, want %s (the old configuration keeps running)", st.Config.Version, before)
			}
			if !slices.ContainsFunc(st.Config.Reloads, func(e reloadResult) bool {
				return e.Time.After(mark) && e.Trigger == "api" && e.Error != "" && e.Error == r.Error
			}) {
				t.Errorf("/admin/status config.reloads lacks the refused reload; entries since the edit: %s", reloadsSince(st.Config.Reloads, mark))
			}
			t.Logf("refused: %s", r.Error)

			rr, err := tcp.C.ChatTo(ws.User, strings.Repeat("x", 600), wait)
			mustCode(t, "a 600-byte chat after the bad edit (running limit 1024, refused file 100)", rr, err, packet.StatusOK)
			mustRecvChat(t, ws.C, "the ws client")
			f.check(t, "refusing a bad edit ("+tc.name+")")
		})
	}
}

// restoreConfig writes content to path, applies it with POST /admin/reload, and waits
// for the directory watcher's reload of it. It reports instead of failing a test, for
// cleanups.
func restoreConfig(adm *adminClient, path string, content []byte) error {
	mark := time.Now()
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return err
	}
	r, err := adm.do(http.MethodPost, "/admin/reload")
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return fmt.Errorf("POST /admin/reload: %s", r)
	}
	deadline := time.Now().Add(wait)
	for {
		st, err := adm.getStatus()
		if err == nil && slices.ContainsFunc(st.Config.Reloads, func(e reloadResult) bool {
			return e.Time.After(mark) && e.Trigger == "file"
		}) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no reload by the directory watcher after the restore (%v)", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestReloadTriggers checks the triggers and skipping: POST /admin/reload and a rewrite
// of the file with the same content are skipped (the version stays), SIGHUP reloads
// (trigger "signal") with and without an edit.
func TestReloadTriggers(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "reload-triggers", gwConfig{})
	g := startTestGateway(t, "reload-triggers", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	f := &fleet{}
	f.join(t, g, epTCP, nil)
	f.join(t, g, epWS, nil)
	f.check(t, "the start")
	version := adm.status(t).Config.Version

	t.Run("POST /admin/reload without a change is skipped", func(t *testing.T) {
		mark := time.Now()
		r := adm.mustReload(t, http.StatusOK)
		if !r.Skipped || r.Error != "" || len(r.Changed) > 0 || r.Trigger != "api" || r.Version != version {
			t.Errorf("reload without a change: %s, want skipped, trigger api, version %s", r, version)
		}
		if e := adm.waitReload(t, mark, "the skipped reload is listed", func(e reloadResult) bool { return e.Trigger == "api" }); !e.Skipped {
			t.Errorf("history entry %s, want skipped", e)
		}
		f.check(t, "a skipped reload")
	})

	t.Run("rewriting the file unchanged is skipped", func(t *testing.T) {
		mark := time.Now()
		cfg.Write(t, inPlace)
		e := adm.waitReload(t, mark, "the watcher reloads the rewritten file", func(e reloadResult) bool { return e.Trigger == "file" })
		if !e.Skipped || e.Error != "" || e.Version != version {
			t.Errorf("reload of the unchanged file: %s, want skipped at version %s", e, version)
		}
		f.check(t, "rewriting the file unchanged")
	})

	t.Run("SIGHUP without a change", func(t *testing.T) {
		mark := time.Now()
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		e := adm.waitReload(t, mark, "SIGHUP reloads", func(e reloadResult) bool { return e.Trigger == "signal" })
		if !e.Skipped || e.Error != "" || e.Version != version {
			t.Errorf("reload on SIGHUP without a change: %s, want skipped at version %s", e, version)
		}
		f.check(t, "SIGHUP")
	})

	t.Run("SIGHUP with an edit", func(t *testing.T) {
		cfg.Set("limits.max_content_bytes", 700)
		mark := time.Now()
		cfg.Write(t, byRename)
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		e := adm.waitReload(t, mark, "SIGHUP reloads", func(e reloadResult) bool { return e.Trigger == "signal" })
		if e.Error != "" {
			t.Fatalf("reload on SIGHUP: %s", e)
		}
		// The watcher reloads the same edit: whichever comes first applies it, the other
		// finds nothing new.
		applied := adm.waitReload(t, mark, "the edit is applied", func(e reloadResult) bool { return e.Error == "" && !e.Skipped })
		adm.waitReload(t, mark, "the directory watcher reloads too", func(e reloadResult) bool { return e.Trigger == "file" })
		t.Logf("SIGHUP reload: %s; applied by trigger %q", e, applied.Trigger)
		if !applied.hasChange("limits") {
			t.Errorf("reload %s: want the change %q", applied, "limits")
		}
		if v := adm.status(t).Config.Version; v == version || v != applied.Version {
			t.Errorf("config version %s, want the applied %s (was %s)", v, applied.Version, version)
		}
		r, err := f.members[0].C.ChatTo(f.members[1].User, strings.Repeat("z", 701), wait)
		mustCode(t, "a 701-byte chat under the new limit of 700", r, err, packet.StatusTooLarge)
		f.check(t, "SIGHUP with an edit")
	})
}

// TestAdminEndpointsAndMetrics checks that every admin endpoint needs the admin key
// (401 without it, with a wrong one, or with an API key), that /metrics reports
// timgw_connections by protocol as connected and timgw_config_reloads_total by result,
// and that admin.keys reloads.
func TestAdminEndpointsAndMetrics(t *testing.T) {
	t.Parallel()
	cfg := newLiveConfig(t, "reload-admin", gwConfig{TLS: true}) // the run's shared certificate
	g := startTestGateway(t, "reload-admin", gwConfig{File: cfg.Path})
	adm := newAdminClient(t, g)
	f := &fleet{}
	for _, ep := range []endpoint{epTCP, epTCP, epWS, epTLS, epWSS} {
		f.join(t, g, ep, certs.TLSConfig())
	}
	f.check(t, "the start")
	want := map[string]int{"tcp": 2, "ws": 1, "tls+tcp": 1, "wss": 1}

	t.Run("admin key required", func(t *testing.T) {
		plain := timclient.NewAPI("http://"+g.Addr, testAPIKey, nil) // an API key is no admin key
		defer plain.CloseIdle()
		mark := time.Now()
		for _, ep := range []struct{ method, path string }{
			{http.MethodGet, "/metrics"}, {http.MethodGet, "/admin/status"}, {http.MethodPost, "/admin/reload"},
		} {
			for _, hdr := range [][]string{nil, {"X-Admin-Key", "wrong-key"}, {"Authorization", "Bearer wrong-key"}, {"X-Admin-Key", testAPIKey}} {
				r, err := plain.Do(ep.method, ep.path, nil, hdr...)
				if err != nil {
					t.Fatalf("%s %s: %v", ep.method, ep.path, err)
				}
				if r.Status != http.StatusUnauthorized {
					t.Errorf("%s %s with headers %q: %s, want 401", ep.method, ep.path, hdr, r)
				}
			}
		}
		if s := reloadsSince(adm.status(t).Config.Reloads, mark); s != "none" {
			t.Errorf("POST /admin/reload without the admin key reloaded: %s", s)
		}
		r, err := plain.Do(http.MethodGet, "/metrics", nil, "Authorization", "Bearer "+reloadAdminKey)
		if err != nil || r.Status != http.StatusOK {
			t.Errorf("GET /metrics with the admin key as a bearer token: %v %v, want 200", r, err)
		}
	})

	connections := func(t *testing.T) {
		t.Helper()
		eventually(t, "timgw_connections by protocol matches the connected clients", func() error {
			m, err := adm.metrics()
			if err != nil {
				return err
			}
			got := map[string]int{}
			for k, v := range m {
				if p, ok := strings.CutPrefix(k, `timgw_connections{protocol="`); ok && v != 0 {
					got[strings.TrimSuffix(p, `"}`)] = int(v)
				}
			}
			if !maps.Equal(got, want) {
				return fmt.Errorf("timgw_connections %v, want %v", got, want)
			}
			st, err := adm.getStatus()
			if err != nil {
				return err
			}
			maps.DeleteFunc(st.Connections, func(_ string, n int) bool { return n == 0 })
			if !maps.Equal(st.Connections, want) {
				return fmt.Errorf("/admin/status connections %v, want %v", st.Connections, want)
			}
			return nil
		})
	}

	t.Run("timgw_connections", func(t *testing.T) {
		connections(t)
		// A TCP client leaves.
		f.members[0].C.Close()
		f.members = slices.Delete(f.members, 0, 1)
		want["tcp"]--
		connections(t)
		f.check(t, "a client left")
	})

	t.Run("timgw_config_reloads_total", func(t *testing.T) {
		const ok, skipped, failed = `timgw_config_reloads_total{result="ok"}`, `timgw_config_reloads_total{result="skipped"}`, `timgw_config_reloads_total{result="error"}`
		m0, err := adm.metrics()
		if err != nil {
			t.Fatal(err)
		}
		if m0[ok] < 1 {
			t.Errorf("%s = %v, want >= 1 (the startup)", ok, m0[ok])
		}
		adm.mustReload(t, http.StatusOK) // nothing changed: skipped

		bad := cfg.Clone(t)
		bad.Set("limits.bogus_key", 1)
		mark := time.Now()
		writeFileAs(t, cfg.Path, []byte(bad.Render(t)), byRename)
		// Refused twice: by the POST and by the watcher.
		adm.mustReload(t, http.StatusUnprocessableEntity)
		adm.waitReload(t, mark, "the watcher's reload of the bad file", func(e reloadResult) bool { return e.Trigger == "file" })

		cfg.Set("limits.max_content_bytes", 900)
		// The POST and the watcher: one applies the edit, the other finds nothing new.
		cfg.ApplyByAPI(t, adm, byRename)
		m, err := adm.metrics()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			series string
			delta  float64
		}{{ok, 1}, {skipped, 2}, {failed, 2}} {
			if got := m[c.series] - m0[c.series]; got != c.delta {
				t.Errorf("%s grew by %v, want %v", c.series, got, c.delta)
			}
		}
		f.check(t, "reloads")
	})

	t.Run("admin.keys reloaded", func(t *testing.T) {
		const newKey = "reload-rotated-admin-key"
		cfg.Set("admin.keys", []any{newKey})
		mark := time.Now()
		cfg.Write(t, inPlace)
		code, r := adm.reload(t)
		if code != http.StatusOK && code != http.StatusUnauthorized { // 401: the watcher applied it first
			t.Fatalf("POST /admin/reload: HTTP %d %s", code, r)
		}
		old := adm.Key
		adm.Key = newKey
		adm.waitReload(t, mark, "the directory watcher reloads too", func(e reloadResult) bool { return e.Trigger == "file" })
		for _, path := range []string{"/admin/status", "/metrics"} {
			adm.Key = old
			if r, err := adm.do(http.MethodGet, path); err != nil || r.Status != http.StatusUnauthorized {
				t.Errorf("GET %s with the removed admin key: %v %v, want 401", path, r, err)
			}
			adm.Key = newKey
			if r, err := adm.do(http.MethodGet, path); err != nil || r.Status != http.StatusOK {
				t.Errorf("GET %s with the new admin key: %v %v, want 200", path, r, err)
			}
		}
		f.check(t, "replacing admin.keys")
	})
}

// TestShutdownGraceful stops a gateway with TCP and WebSocket clients connected with
// SIGTERM: each WebSocket client receives a close frame, each TCP connection is closed,
// the process exits with status 0 within a few seconds, and /health, polled all along
// (with keep-alive, as load balancers do), never answers 200 once clients were being
// closed (503 or a refused connection).
func TestShutdownGraceful(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "shutdown", gwConfig{})
	f := &fleet{}
	for _, ep := range []endpoint{epTCP, epWS, epTCP, epWS} {
		f.join(t, g, ep, nil)
	}
	f.check(t, "the start")

	type probe struct {
		start  time.Time
		status int // 0: no answer
		err    error
	}
	var (
		mu     sync.Mutex
		probes []probe
	)
	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	api.Client.Timeout = time.Second
	defer api.CloseIdle()
	stopPolling, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPolling:
				return
			default:
			}
			p := probe{start: time.Now()}
			r, err := api.Get("/health")
			p.err = err
			if r != nil {
				p.status = r.Status
			}
			mu.Lock()
			probes = append(probes, p)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	eventually(t, "/health answers 200 before the shutdown", func() error {
		mu.Lock()
		defer mu.Unlock()
		if slices.ContainsFunc(probes, func(p probe) bool { return p.status == http.StatusOK }) {
			return nil
		}
		return errors.New("no 200 yet")
	})

	sent := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- g.stop() }() // SIGTERM, then waits for the exit
	var firstClosed time.Time
	for _, m := range f.members {
		got, err := m.C.ExpectClosed(wait)
		if err != nil {
			t.Errorf("the %s client (%s) after SIGTERM: %v", m.Name, m.User, err)
			continue
		}
		if firstClosed.IsZero() {
			firstClosed = time.Now()
		}
		if len(got) > 0 {
			t.Logf("the %s client received before the close: %s", m.Name, timclient.Describe(got))
		}
		var ce *timclient.CloseError
		switch {
		case m.C.Proto() == timclient.WS && !errors.As(m.C.Err(), &ce):
			t.Errorf("the %s client was closed without a WebSocket close frame: %v", m.Name, m.C.Err())
		case ce != nil:
			t.Logf("the %s client received a close frame: %d %q", m.Name, ce.Code, ce.Reason)
		}
	}
	var stopErr error
	select {
	case stopErr = <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not stop within 30 s")
	}
	took := time.Since(sent)
	close(stopPolling)
	<-polled
	if stopErr != nil {
		t.Error(stopErr)
	}
	if g.waitErr != nil {
		t.Errorf("the gateway exited with %v after SIGTERM, want status 0", g.waitErr)
	}
	if took > 5*time.Second {
		t.Errorf("the gateway took %v to exit after SIGTERM, want at most 5 s", took.Round(time.Millisecond))
	}
	t.Logf("exit %d ms after SIGTERM", took.Milliseconds())

	if r, err := api.Get("/health"); err == nil {
		t.Errorf("GET /health after the exit: %s, want a refused connection", r)
	}
	mu.Lock()
	defer mu.Unlock()
	var during []string
	late := 0
	for _, p := range probes {
		if p.start.Before(sent) {
			continue
		}
		s := fmt.Sprintf("+%dms: %d", p.start.Sub(sent).Milliseconds(), p.status)
		if p.err != nil {
			s = fmt.Sprintf("+%dms: %v", p.start.Sub(sent).Milliseconds(), p.err)
		}
		during = append(during, s)
		if !firstClosed.IsZero() && p.start.After(firstClosed) && p.status == http.StatusOK {
			if late == 0 {
				t.Errorf("GET /health sent %v after clients were being closed answered 200, want 503 or a refused connection",
					p.start.Sub(firstClosed).Round(time.Millisecond))
			}
			late++
		}
	}
	if late > 1 {
		t.Errorf("%d GET /health in all answered 200 after clients were being closed", late)
	}
	if len(during) > 12 {
		during = append(during[:6], append([]string{"..."}, during[len(during)-6:]...)...)
	}
	t.Logf("/health after SIGTERM: %s", strings.Join(during, ", "))
	log := g.log.From(0)
	for _, line := range []string{`msg="shutting down" signal=terminated`, `msg=stopped`} {
		if !strings.Contains(log, line) {
			t.Errorf("the gateway log lacks %s", line)
		}
	}
}
