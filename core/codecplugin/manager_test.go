package codecplugin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/pluginhost"
	sdk "github.com/timgw/timgw/plugins/codec"
)

// The test binary doubles as the plugin: the Manager starts it as `__plugin codec codec-test`.
func TestMain(m *testing.M) {
	pluginhost.Register(pluginhost.Builtin{Kind: pluginhost.Codec, Name: "codec-test", Main: func() { sdk.Serve(testPlugin{}) }})
	pluginhost.Main()
	os.Exit(m.Run())
}

// testPlugin speaks lines starting with "T1": each line is emitted as a cmd 13 packet
// whose body carries the line; packets from the gateway are written back as their body
// and a newline. "T1 crash" exits the process; "T1 close" closes the connection.
type testPlugin struct{}

func (testPlugin) Init(h sdk.Hello) (sdk.Info, error) {
	return sdk.Info{Name: "t1", Version: "v-" + h.Options["tag"], Recognizer: sdk.Recognizer{Rules: []sdk.Rule{{Steps: []sdk.Step{sdk.Text("T1")}}}},
		Goodbye: []byte(h.Options["goodbye"])}, nil
}

func (testPlugin) Open(c sdk.Conn) sdk.ConnHandler { return &testConn{c: c} }

type testConn struct {
	c   sdk.Conn
	buf []byte
}

func (t *testConn) Data(b []byte) {
	t.buf = append(t.buf, b...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			return
		}
		line := string(t.buf[:i])
		t.buf = t.buf[i+1:]
		switch line {
		case "T1 crash":
			os.Exit(3)
		case "T1 close":
			t.c.Close("asked to close")
			return
		}
		p, err := sdk.Encode(sdk.CmdHeartbeatReq, map[string]string{"line": line, "transport": t.c.Transport(), "remote": t.c.RemoteAddr()})
		if err != nil {
			panic(err)
		}
		t.c.Emit(p)
	}
}

func (t *testConn) Packet(p sdk.Packet) { t.c.Write(append(bytes.Clone(p.Body), '\n')) }
func (t *testConn) Closed(string)       {}

// sink is a codec.Sink standing in for a transport connection.
type sink struct {
	mu       sync.Mutex
	injected []packet.Packet
	written  bytes.Buffer
	closed   string
	changed  chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{}, 1)} }

func (s *sink) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *sink) Inject(pkts ...packet.Packet) {
	s.mu.Lock()
	s.injected = append(s.injected, pkts...)
	s.mu.Unlock()
	s.poke()
}

func (s *sink) WriteRaw(b []byte) error {
	s.mu.Lock()
	s.written.Write(b)
	s.mu.Unlock()
	s.poke()
	return nil
}

func (s *sink) Close(reason string) {
	s.mu.Lock()
	if s.closed == "" {
		s.closed = reason
	}
	s.mu.Unlock()
	s.poke()
}

func (s *sink) RemoteAddr() string { return "192.0.2.1:4000" }
func (s *sink) Protocol() string   { return "t1+tls" }

// wait waits until cond holds.
func (s *sink) wait(t *testing.T, what string, cond func(s *sink) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("timed out waiting for %s; injected %d, written %q, closed %q", what, len(s.injected), s.written.String(), s.closed)
		}
	}
}

func (s *sink) waitClosed(t *testing.T, want string) {
	t.Helper()
	s.wait(t, "close", func(s *sink) bool { return s.closed != "" })
	s.mu.Lock()
	defer s.mu.Unlock()
	if !strings.Contains(s.closed, want) {
		t.Fatalf("closed with %q, want %q", s.closed, want)
	}
}

func testConfig(plugins ...config.CodecPlugin) config.Codecs {
	return config.Codecs{
		Restart: config.CodecRestart{BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond, MaxCrashes: 3, Window: time.Minute},
		Plugins: plugins,
	}
}

func testPluginConfig(name string) config.CodecPlugin {
	return config.CodecPlugin{Name: name, Builtin: "codec-test", Options: map[string]string{"tag": name}}
}

func startManager(t *testing.T, cfg config.Codecs) (*Manager, *[]codec.Protocol) {
	t.Helper()
	var mu sync.Mutex
	protos := new([]codec.Protocol)
	m, err := Start(cfg, Options{MaxFrame: 1 << 20, SetProtocols: func(ps []codec.Protocol) {
		mu.Lock()
		*protos = ps
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return m, protos
}

// open attaches a new connection of proto to a sink.
func open(t *testing.T, proto codec.Protocol) (codec.Codec, *sink) {
	t.Helper()
	c := proto.NewCodec(codec.Options{MaxFrame: 1 << 20})
	s := newSink()
	c.(codec.Attacher).Attach(s)
	return c, s
}

func decode(t *testing.T, c codec.Codec, data string) {
	t.Helper()
	var d codec.Decoded
	n, err := c.Decode([]byte(data), &d)
	if err != nil || n != len(data) || len(d.Packets) != 0 {
		t.Fatalf("Decode: n=%d err=%v packets=%d", n, err, len(d.Packets))
	}
}

func status(t *testing.T, m *Manager, name string) Status {
	t.Helper()
	for _, s := range m.Status() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s", name)
	return Status{}
}

func waitState(t *testing.T, m *Manager, name string, want State) Status {
	t.Helper()
	return waitStatus(t, m, name, string(want), func(s Status) bool { return s.State == want })
}

func waitStatus(t *testing.T, m *Manager, name, want string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := status(t, m, name)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %s: want %s, have %+v", name, want, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnectionRoundTrip(t *testing.T) {
	m, protos := startManager(t, testConfig(testPluginConfig("t1")))
	if len(*protos) != 1 || (*protos)[0].Name() != "t1" {
		t.Fatalf("SetProtocols got %v", *protos)
	}
	p := (*protos)[0]
	for in, want := range map[string]codec.Match{"T1 x": codec.Matched, "T": codec.NeedMore, "XX": codec.NoMatch} {
		if got := p.Recognize([]byte(in)); got != want {
			t.Errorf("Recognize(%q) = %d, want %d", in, got, want)
		}
	}
	c, s := open(t, p)
	decode(t, c, "T1 hel")
	decode(t, c, "lo\nT1 again\n")
	s.wait(t, "two packets", func(s *sink) bool { return len(s.injected) == 2 })
	body := string(s.injected[0].Body)
	if s.injected[0].Cmd != packet.CmdHeartbeatReq || !strings.Contains(body, `"line":"T1 hello"`) ||
		!strings.Contains(body, `"transport":"t1+tls"`) || !strings.Contains(body, `"remote":"192.0.2.1:4000"`) {
		t.Fatalf("injected %s", body)
	}
	if out := c.Encode([]byte("keep"), packet.Packet{Cmd: packet.CmdChatReq, Body: []byte(`{"cmd":11}`)}); string(out) != "keep" {
		t.Fatalf("Encode returned %q, want dst unchanged", out)
	}
	s.wait(t, "write", func(s *sink) bool { return s.written.String() == "{\"cmd\":11}\n" })
	st := status(t, m, "t1")
	if st.State != StateRunning || st.PID <= 0 || st.Connections != 1 || st.Version != "v-t1" || st.WireVersion != sdk.WireVersion {
		t.Fatalf("status %+v", st)
	}
	decode(t, c, "T1 close\n")
	s.waitClosed(t, "asked to close")
	c.(codec.Detacher).Detach()
	if st := status(t, m, "t1"); st.Connections != 0 {
		t.Fatalf("%d connections after Detach", st.Connections)
	}
}

func TestCrashClosesConnectionsAndRestarts(t *testing.T) {
	m, protos := startManager(t, testConfig(testPluginConfig("t1"), testPluginConfig("t2")))
	p1, p2 := (*protos)[0], (*protos)[1]
	a, sa := open(t, p1)
	_, sb := open(t, p1)
	other, so := open(t, p2)
	decode(t, a, "T1 crash\n")
	sa.waitClosed(t, "codec plugin t1 crashed")
	sb.waitClosed(t, "codec plugin t1 crashed")
	st := waitStatus(t, m, "t1", "restarted", func(s Status) bool { return s.State == StateRunning && s.Restarts == 1 })
	if st.Restarts != 1 || st.RecentCrashes != 1 || st.LastError == "" {
		t.Fatalf("status after restart %+v", st)
	}
	c, s := open(t, p1)
	decode(t, c, "T1 after\n")
	s.wait(t, "packet after restart", func(s *sink) bool { return len(s.injected) == 1 })
	// The other plugin never noticed.
	decode(t, other, "T1 still\n")
	so.wait(t, "packet on the other plugin", func(s *sink) bool { return len(s.injected) == 1 })
	if so.closed != "" {
		t.Fatalf("other plugin's connection closed: %s", so.closed)
	}
}

// TestCrashWritesGoodbye: a crashed plugin's connections get the goodbye it declared,
// then are closed; a plugin that declared none gets nothing written.
func TestCrashWritesGoodbye(t *testing.T) {
	bye := testPluginConfig("t1")
	bye.Options["goodbye"] = "T1 bye\n"
	_, protos := startManager(t, testConfig(bye, testPluginConfig("t2")))
	for _, tt := range []struct {
		proto codec.Protocol
		want  string
	}{{(*protos)[0], "T1 bye\n"}, {(*protos)[1], ""}} {
		c, s := open(t, tt.proto)
		decode(t, c, "T1 crash\n")
		s.waitClosed(t, "crashed")
		s.mu.Lock()
		got := s.written.String()
		s.mu.Unlock()
		if got != tt.want {
			t.Fatalf("%s: written before the close %q, want %q", tt.proto.Name(), got, tt.want)
		}
	}
}

func TestFailedAfterRepeatedCrashes(t *testing.T) {
	cfg := testConfig(testPluginConfig("t1"))
	cfg.Restart.MaxCrashes = 2
	m, protos := startManager(t, cfg)
	p := (*protos)[0]
	for i := range 2 {
		waitStatus(t, m, "t1", "running", func(s Status) bool { return s.State == StateRunning && s.RecentCrashes == i })
		c, s := open(t, p)
		decode(t, c, "T1 crash\n")
		s.waitClosed(t, "crashed")
	}
	st := waitState(t, m, "t1", StateFailed)
	if st.RecentCrashes != 2 || st.PID != 0 {
		t.Fatalf("status %+v", st)
	}
	if got := p.Recognize([]byte("T1 x")); got != codec.NoMatch {
		t.Fatalf("a failed plugin still recognises its protocol: %d", got)
	}
	_, s := open(t, p)
	s.waitClosed(t, "not running (failed)")
	if err := m.Restart("t1"); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, m, "t1", StateRunning)
	if st.RecentCrashes != 0 {
		t.Fatalf("crashes not reset by Restart: %+v", st)
	}
	np := m.Protocols()[0]
	c, s := open(t, np)
	decode(t, c, "T1 back\n")
	s.wait(t, "packet after Restart", func(s *sink) bool { return len(s.injected) == 1 })
}

func TestApply(t *testing.T) {
	m, protos := startManager(t, testConfig(testPluginConfig("keep"), testPluginConfig("drop"), testPluginConfig("change")))
	keep, drop, change := (*protos)[0], (*protos)[1], (*protos)[2]
	ck, sk := open(t, keep)
	_, sd := open(t, drop)
	_, sc := open(t, change)
	changed := testPluginConfig("change")
	changed.Options = map[string]string{"tag": "v2"}
	notShared := testPluginConfig("own")
	f := false
	notShared.SharedPort, notShared.Listen = &f, []string{"127.0.0.1:0"}
	changes, err := m.Apply(testConfig(testPluginConfig("keep"), changed, notShared))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"+own", "-drop", "~change"}; !slices.Equal(changes, want) {
		t.Fatalf("Apply changes %v, want %v", changes, want)
	}
	sd.waitClosed(t, "removed by a configuration reload")
	sc.waitClosed(t, "replaced by a configuration reload")
	if len(*protos) != 3 || (*protos)[0] != keep || (*protos)[1] == change || (*protos)[2].Name() != "own" {
		t.Fatalf("protocols after Apply: %v", *protos)
	}
	_ = drop
	decode(t, ck, "T1 still here\n")
	sk.wait(t, "packet on the kept plugin", func(s *sink) bool { return len(s.injected) == 1 })
	if st := status(t, m, "change"); st.Version != "v-v2" || st.State != StateRunning {
		t.Fatalf("replaced plugin status %+v", st)
	}
	own := (*protos)[2]
	if got := own.Recognize([]byte("T1 x")); got != codec.NoMatch {
		t.Fatalf("plugin without shared_port recognised on the shared port: %d", got)
	}
	c, s := open(t, own) // its own port still serves it
	decode(t, c, "T1 own port\n")
	s.wait(t, "packet on own port", func(s *sink) bool { return len(s.injected) == 1 })
	if got := m.Listeners(); len(got) != 1 || got["own"][0] != "127.0.0.1:0" {
		t.Fatalf("Listeners %v", got)
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Codecs
		want string
	}{
		{"missing binary", testConfig(config.CodecPlugin{Name: "x", Path: "/nonexistent/plugin"}), "/nonexistent/plugin"},
		{"not a plugin", testConfig(config.CodecPlugin{Name: "x", Path: "/bin/true"}), "codec plugin x"},
		{"unknown builtin", testConfig(config.CodecPlugin{Name: "x", Builtin: "codec-nope"}), "not compiled into this binary"},
		{"invalid", testConfig(config.CodecPlugin{Name: "tcp", Builtin: "codec-test"}), "built-in protocol"},
		{"both", testConfig(config.CodecPlugin{Name: "x", Builtin: "codec-test", Path: "/bin/true"}), "exactly one"},
		{"goodbye too long", testConfig(config.CodecPlugin{Name: "x", Builtin: "codec-test",
			Options: map[string]string{"goodbye": strings.Repeat("b", sdk.MaxGoodbye+1)}}), "goodbye of 4097 bytes, more than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Start(tt.cfg, Options{})
			if err == nil {
				_ = m.Stop(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNoPlugins(t *testing.T) {
	m, protos := startManager(t, config.Codecs{})
	if len(*protos) != 0 || len(m.Status()) != 0 {
		t.Fatalf("protocols %v status %v", *protos, m.Status())
	}
}

func TestDrainDeliversLastPackets(t *testing.T) {
	_, protos := startManager(t, testConfig(testPluginConfig("t1")))
	for range 20 {
		c, s := open(t, (*protos)[0])
		decode(t, c, "T1 last words\n")
		done := make(chan int, 1)
		c.(codec.Drainer).Drain(func() {
			s.mu.Lock()
			done <- len(s.injected)
			s.mu.Unlock()
		})
		select {
		case n := <-done:
			if n != 1 {
				t.Fatalf("drain done with %d packets injected, want the last one first", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("drain never done")
		}
	}
}

func TestConnectionsWhileRestarting(t *testing.T) {
	cfg := testConfig(testPluginConfig("t1"))
	cfg.Restart.BackoffMin = time.Second
	m, protos := startManager(t, cfg)
	c, s := open(t, (*protos)[0])
	decode(t, c, "T1 crash\n")
	s.waitClosed(t, "crashed")
	waitState(t, m, "t1", StateRestarting)
	if got := (*protos)[0].Recognize([]byte("T1 x")); got != codec.Matched {
		t.Fatalf("Recognize while restarting = %d: clients should get a reason, not 'unknown protocol'", got)
	}
	_, s2 := open(t, (*protos)[0])
	s2.waitClosed(t, "not running (restarting)")
}

func TestApplyRefusesPluginThatDoesNotStart(t *testing.T) {
	m, protos := startManager(t, testConfig(testPluginConfig("keep")))
	keep := (*protos)[0]
	c, s := open(t, keep)
	changed := testPluginConfig("keep")
	changed.Options = map[string]string{"tag": "v2"}
	_, err := m.Apply(testConfig(changed, config.CodecPlugin{Name: "broken", Path: "/nonexistent/codec-plugin"}))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/codec-plugin") {
		t.Fatalf("Apply: %v, want the broken plugin's start error", err)
	}
	if len(*protos) != 1 || (*protos)[0] != keep {
		t.Fatalf("protocols changed by a refused Apply: %v", *protos)
	}
	if st := status(t, m, "keep"); st.Version != "v-keep" || st.State != StateRunning {
		t.Fatalf("status after a refused Apply: %+v", st)
	}
	decode(t, c, "T1 untouched\n")
	s.wait(t, "packet after a refused Apply", func(s *sink) bool { return len(s.injected) == 1 })
	// Prepare then Rollback changes nothing either.
	plan, err := m.Prepare(testConfig(changed))
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Changes(); !slices.Equal(got, []string{"~keep"}) {
		t.Fatalf("plan changes %v", got)
	}
	plan.Rollback()
	if st := status(t, m, "keep"); st.Version != "v-keep" {
		t.Fatalf("status after Rollback: %+v", st)
	}
	if _, err := m.Apply(testConfig(changed)); err != nil { // the lock was released
		t.Fatal(err)
	}
	s.waitClosed(t, "replaced by a configuration reload")
}

func TestStaleSocketDirsRemoved(t *testing.T) {
	// A pid far above pid_max belongs to no process.
	stale, err := os.MkdirTemp("", socketRootPrefix+"999999999-")
	if err != nil {
		t.Fatal(err)
	}
	live, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", socketRootPrefix, os.Getppid()))
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	startManager(t, testConfig(testPluginConfig("t1")))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale socket dir %s still there: %v", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("socket dir of a live process removed: %v", err)
	}
}
