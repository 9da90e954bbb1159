package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

const wait = 5 * time.Second // generous: tests run on loaded machines

// testConfig is a gateway on a free loopback port with storage and hooks off.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.Storage.Plugin = config.StorageNone
	cfg.Hooks.Enabled = false
	cfg.Codecs.Plugins = nil // built-in plugins run the timgw binary, not this test binary
	cfg.Runtime.Workers = 8
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	return &cfg
}

// startApp starts an App in this process and shuts it down when the test ends.
func startApp(t *testing.T, cfg *config.Config) *App {
	t.Helper()
	a, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	return a
}

// login connects to addr over t-im TCP and logs user in, requiring code 10007.
func login(t *testing.T, addr net.Addr, user string) *timclient.Conn {
	t.Helper()
	c, err := timclient.Dial("tcp://"+addr.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Login(user, "x", wait); err != nil {
		t.Fatalf("login %s via %s: %v", user, addr, err)
	}
	return c
}

func TestStartServesTIM(t *testing.T) {
	a := startApp(t, testConfig(t))
	alice := login(t, a.Addr(), "alice")
	bob := login(t, a.Addr(), "bob")
	rep, err := alice.ChatTo("bob", "hi bob", wait)
	if err != nil || rep.Code != packet.StatusOK {
		t.Fatalf("chat: %+v, %v", rep, err)
	}
	msg, err := bob.ExpectChat(wait)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Content != "hi bob" || string(msg.From) != "alice" {
		t.Errorf("bob got %+v", msg)
	}
	if h := a.ReloadHistory(); len(h) != 1 || h[0].Trigger != "startup" || h[0].Version != a.ConfigVersion() {
		t.Errorf("history after start: %+v", h)
	}
}

// TestReload applies edits in order to the running configuration of one App and checks
// each result and, where the edit shows on the wire, what a client sees after it.
func TestReload(t *testing.T) {
	a := startApp(t, testConfig(t))
	alice := login(t, a.Addr(), "alice")
	login(t, a.Addr(), "bob")
	long := strings.Repeat("x", 100)
	chatCode := func(t *testing.T) packet.Status {
		t.Helper()
		rep, err := alice.ChatTo("bob", long, wait)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Code
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	cases := []struct {
		name    string
		edit    func(c *config.Config) // on a copy of the running configuration
		skipped bool
		changed []string
		restart []string
		refused string // part of the reason a refused reload gives
		check   func(t *testing.T)
	}{
		{
			name:    "nothing changed",
			edit:    func(*config.Config) {},
			skipped: true,
		},
		{
			name:    "limits",
			edit:    func(c *config.Config) { c.Limits.MaxContentBytes = 16 },
			changed: []string{"limits"},
			check: func(t *testing.T) {
				if code := chatCode(t); code != packet.StatusTooLarge {
					t.Errorf("100-byte chat over a 16-byte limit: code %d, want %d", code, packet.StatusTooLarge)
				}
			},
		},
		{
			name: "restart only",
			edit: func(c *config.Config) {
				c.Cluster.NodeID = "other"
				c.Log.Format = "json"
				c.Runtime.EventLoops = 3
			},
			restart: []string{"runtime.event_loops", "log.format", "cluster"},
		},
		{
			name: "restart-only keys back to their running values",
			edit: func(c *config.Config) {
				c.Cluster.NodeID = testConfig(t).Cluster.NodeID
				c.Log.Format = "text"
				c.Runtime.EventLoops = 0
			},
			restart: nil,
		},
		{
			name:    "log.format changed again",
			edit:    func(c *config.Config) { c.Log.Format = "json" },
			restart: []string{"log.format"},
		},
		{
			name:    "log.format reverted alone",
			edit:    func(c *config.Config) { c.Log.Format = "text" },
			restart: nil,
		},
		{
			name:    "invalid value",
			edit:    func(c *config.Config) { c.Limits.MaxContentBytes = c.Limits.MaxFrameBytes + 1 },
			refused: "limits.max_content_bytes: must be > 0 and <= max_frame_bytes",
			check: func(t *testing.T) {
				if code := chatCode(t); code != packet.StatusTooLarge {
					t.Errorf("limit after a refused reload: code %d, want %d (16 bytes kept)", code, packet.StatusTooLarge)
				}
			},
		},
		{
			name: "one step fails, none applies",
			edit: func(c *config.Config) {
				c.Limits.MaxContentBytes = 64 << 10
				c.Listeners = []config.Listener{{Protocol: "tcp", Address: "127.0.0.1:0"}, {Protocol: "ws", Address: busy.Addr().String()}}
			},
			refused: "listeners: ",
			check: func(t *testing.T) {
				if code := chatCode(t); code != packet.StatusTooLarge {
					t.Errorf("limit after a refused reload: code %d, want %d (16 bytes kept)", code, packet.StatusTooLarge)
				}
				a.lnMu.Lock()
				n := len(a.listeners)
				a.lnMu.Unlock()
				if n != 1 {
					t.Errorf("%d listeners after a refused reload, want the shared port only", n)
				}
			},
		},
		{
			name: "port added",
			edit: func(c *config.Config) {
				c.Limits.MaxContentBytes = 64 << 10
				c.Listeners = []config.Listener{{Protocol: "tcp", Address: "127.0.0.1:0"}}
			},
			changed: []string{"limits", "listeners: +tcp 127.0.0.1:0"},
			check: func(t *testing.T) {
				if code := chatCode(t); code != packet.StatusOK {
					t.Errorf("100-byte chat under a 64 KiB limit: code %d", code)
				}
				a.lnMu.Lock()
				added := a.listeners[len(a.listeners)-1].Addr()
				a.lnMu.Unlock()
				login(t, added, "carol")
			},
		},
		{
			name:    "auth",
			edit:    func(c *config.Config) { c.Auth = config.Auth{Mode: "jwt", JWT: config.JWT{Secret: "s3cret"}} },
			changed: []string{"auth"},
			check: func(t *testing.T) {
				c, err := timclient.Dial("tcp://"+a.Addr().String(), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if rep, _ := c.Login("dave", "x", wait); rep == nil || rep.Code != packet.StatusLoginFailed {
					t.Errorf("a login without a token in jwt mode: %+v, want code %d", rep, packet.StatusLoginFailed)
				}
			},
		},
		{
			name:    "port removed",
			edit:    func(c *config.Config) { c.Listeners = nil },
			changed: []string{"listeners: -tcp 127.0.0.1:0"},
			check: func(t *testing.T) {
				if _, err := alice.ChatTo("bob", "still here", wait); err != nil {
					t.Errorf("a connection of before the reloads: %v", err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, version := a.currentConfig(), a.ConfigVersion()
			next := *before
			tc.edit(&next)
			res := a.Reload(&next, "test")
			if res.Skipped != tc.skipped || !slices.Equal(res.Changed, tc.changed) || !slices.Equal(res.Restart, tc.restart) {
				t.Errorf("result %+v; want skipped %v, changed %q, restart %q", res, tc.skipped, tc.changed, tc.restart)
			}
			if tc.refused != "" || tc.skipped {
				if tc.refused != "" && !strings.Contains(res.Error, tc.refused) {
					t.Errorf("error %q, want it to say %q", res.Error, tc.refused)
				}
				if a.currentConfig() != before || a.ConfigVersion() != version || res.Version != version {
					t.Errorf("the running configuration changed (version %s → %s)", version, a.ConfigVersion())
				}
			} else {
				if res.Error != "" {
					t.Fatalf("refused: %s", res.Error)
				}
				if a.currentConfig() != &next || res.Version == version || res.Version != Version(&next) {
					t.Errorf("the new configuration is not running (version %s, result %s)", a.ConfigVersion(), res.Version)
				}
			}
			if h := a.ReloadHistory(); h[len(h)-1].Trigger != "test" || h[len(h)-1].Error != res.Error {
				t.Errorf("history does not end with this attempt: %+v", h[len(h)-1])
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

// TestReloadContract runs registered steps through one good and one refused reload and
// checks the order of Prepare, Commit and Rollback that Step documents.
func TestReloadContract(t *testing.T) {
	a := startApp(t, testConfig(t))
	var calls []string
	record := func(name string, fail bool) Step {
		return StepFunc(func(old, cur *config.Config) (Change, error) {
			calls = append(calls, "prepare "+name)
			if fail && cur.Log.Level == "debug" {
				return nil, errTest
			}
			if old.Log.Level == cur.Log.Level {
				return NoChange, nil
			}
			return &testChange{name: name, calls: &calls}, nil
		})
	}
	a.AddReloadStep("x", record("x", false))
	a.AddReloadStep("y", record("y", true))
	a.AddReloadStep("z", record("z", false))

	cases := []struct {
		level string
		calls []string
		err   string
	}{
		{level: "warn", calls: []string{"prepare x", "prepare y", "prepare z", "commit x", "commit y", "commit z"}},
		{level: "debug", calls: []string{"prepare x", "prepare y", "prepare z", "rollback z", "rollback x"}, err: "y: test step refuses"},
	}
	for _, tc := range cases {
		t.Run(tc.level, func(t *testing.T) {
			calls = nil
			next := *a.currentConfig()
			next.Log.Level = tc.level
			res := a.Reload(&next, "test")
			if res.Error != tc.err {
				t.Errorf("error %q, want %q", res.Error, tc.err)
			}
			if !slices.Equal(calls, tc.calls) {
				t.Errorf("calls %q\nwant  %q", calls, tc.calls)
			}
			if tc.err == "" && !slices.Contains(res.Changed, "y") {
				t.Errorf("changed %q lacks what commit y returned", res.Changed)
			}
		})
	}
}

var errTest = errors.New("test step refuses")

// testChange records its Commit and Rollback.
type testChange struct {
	name  string
	calls *[]string
}

func (c *testChange) Commit() []string {
	*c.calls = append(*c.calls, "commit "+c.name)
	return []string{c.name}
}

func (c *testChange) Rollback() { *c.calls = append(*c.calls, "rollback "+c.name) }
