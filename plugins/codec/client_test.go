package codec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as a plugin: started with testPluginEnv set, it serves
// echoPlugin instead of running the tests.
const testPluginEnv = "TIMGW_CODEC_SDK_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(testPluginEnv) == "1" {
		Serve(echoPlugin{})
		return
	}
	os.Exit(m.Run())
}

// echoPlugin emits each chunk of data as a cmd 13 packet, and writes packets from the
// gateway back as their bodies followed by a newline. "panic" panics, "exit" exits.
type echoPlugin struct{}

func (echoPlugin) Init(h Hello) (Info, error) {
	if h.Options["fail"] != "" {
		return Info{}, fmt.Errorf("asked to fail: %s", h.Options["fail"])
	}
	return Info{Name: "echo", Version: "test", Recognizer: Recognizer{Rules: []Rule{{Steps: []Step{Text("EC")}}}}}, nil
}

func (echoPlugin) Open(c Conn) ConnHandler { return &echoConn{c: c} }

type echoConn struct{ c Conn }

func (e *echoConn) Data(b []byte) {
	switch string(b) {
	case "panic":
		panic("asked to")
	case "exit":
		os.Exit(3)
	case "close":
		e.c.Close("asked to close")
		return
	}
	body, _ := json.Marshal(map[string]string{"data": string(b), "transport": e.c.Transport(), "remote": e.c.RemoteAddr()})
	e.c.Emit(Packet{Cmd: CmdHeartbeatReq, Body: body})
}

func (e *echoConn) Packet(p Packet) { e.c.Write(append(append([]byte(nil), p.Body...), '\n')) }

func (e *echoConn) Closed(string) {}

// recorder is a HostHandler that records frames.
type recorder struct {
	mu     sync.Mutex
	frames []Frame
	signal chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) add(f Frame) {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) Packet(conn uint64, p Packet) {
	r.add(Frame{Kind: KindPacket, Conn: conn, Cmd: p.Cmd, Data: p.Body})
}
func (r *recorder) Write(conn uint64, b []byte) {
	r.add(Frame{Kind: KindWrite, Conn: conn, Data: bytes.Clone(b)})
}
func (r *recorder) Close(conn uint64, reason string) {
	r.add(Frame{Kind: KindClose, Conn: conn, Reason: reason})
}
func (r *recorder) Closed(conn uint64) { r.add(Frame{Kind: KindClosed, Conn: conn}) }
func (r *recorder) Flush()             {}

// wait returns the first n frames, or fails.
func (r *recorder) wait(t *testing.T, n int) []Frame {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		if len(r.frames) >= n {
			f := append([]Frame(nil), r.frames[:n]...)
			r.mu.Unlock()
			return f
		}
		r.mu.Unlock()
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("timed out waiting for %d frames; have %d", n, len(r.frames))
		}
	}
}

func launch(t *testing.T, h HostHandler, opts map[string]string) (*Client, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), testPluginEnv+"=1", "PLUGIN_UNIX_SOCKET_DIR="+t.TempDir())
	return Launch(LaunchConfig{Cmd: cmd, Handler: h, Hello: Hello{Name: "echo", Options: opts, MaxFrame: 1 << 20}})
}

func TestLaunchAndStream(t *testing.T) {
	rec := newRecorder()
	c, err := launch(t, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	if c.Info().Name != "echo" || c.Version() != WireVersion || c.Pid() <= 0 {
		t.Fatalf("info %+v version %d pid %d", c.Info(), c.Version(), c.Pid())
	}
	if _, err := c.Info().Recognizer.Compile(); err != nil {
		t.Fatalf("recognizer: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Open(1, "10.0.0.1:1000", "echo+tls"))
	must(c.Open(2, "10.0.0.2:2000", "echo"))
	must(c.Data(1, []byte("hello")))
	must(c.Packet(2, Packet{Cmd: CmdChatReq, Body: []byte(`{"cmd":11}`)}))
	must(c.Data(2, []byte("close")))
	got := rec.wait(t, 3)
	var sawPacket, sawWrite, sawClose bool
	for _, f := range got {
		switch {
		case f.Kind == KindPacket && f.Conn == 1:
			sawPacket = strings.Contains(string(f.Data), `"data":"hello"`) && strings.Contains(string(f.Data), `"transport":"echo+tls"`)
		case f.Kind == KindWrite && f.Conn == 2:
			sawWrite = string(f.Data) == "{\"cmd\":11}\n"
		case f.Kind == KindClose && f.Conn == 2:
			sawClose = f.Reason == "asked to close"
		}
	}
	if !sawPacket || !sawWrite || !sawClose {
		t.Fatalf("frames: %+v", got)
	}
}

func TestManyFramesInOrder(t *testing.T) {
	rec := newRecorder()
	c, err := launch(t, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	const n = 5000
	if err := c.Open(7, "", "echo"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := c.Data(7, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range rec.wait(t, n) {
		if want := fmt.Sprintf(`"data":"%d"`, i); !strings.Contains(string(f.Data), want) {
			t.Fatalf("frame %d: %s, want %s", i, f.Data, want)
		}
	}
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	rec := newRecorder()
	c, err := launch(t, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	_ = c.Open(1, "", "echo")
	_ = c.Open(2, "", "echo")
	_ = c.Data(1, []byte("panic"))
	_ = c.Data(2, []byte("still here"))
	got := rec.wait(t, 2)
	if got[0].Kind != KindClose || got[0].Conn != 1 || !strings.Contains(got[0].Reason, "panic") {
		t.Fatalf("first frame %+v, want close of conn 1", got[0])
	}
	if got[1].Kind != KindPacket || got[1].Conn != 2 {
		t.Fatalf("second frame %+v, want a packet of conn 2", got[1])
	}
}

func TestPluginExitEndsStream(t *testing.T) {
	c, err := launch(t, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	_ = c.Open(1, "", "echo")
	_ = c.Data(1, []byte("exit"))
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end after the plugin exited")
	}
	if c.Err() == nil {
		t.Fatal("Err is nil after a crash")
	}
	if err := c.Data(1, []byte("x")); err == nil {
		t.Fatal("Data after the end: no error")
	}
}

func TestInitFailure(t *testing.T) {
	_, err := launch(t, newRecorder(), map[string]string{"fail": "bad option"})
	if err == nil || !strings.Contains(err.Error(), "bad option") {
		t.Fatalf("Launch: %v, want the plugin's init error", err)
	}
}

func TestCloseIsAcknowledgedAfterPackets(t *testing.T) {
	rec := newRecorder()
	c, err := launch(t, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	_ = c.Open(1, "", "echo")
	_ = c.Data(1, []byte("last words"))
	_ = c.Close(1, "peer left")
	got := rec.wait(t, 2)
	if got[0].Kind != KindPacket || got[1].Kind != KindClosed || got[1].Conn != 1 {
		t.Fatalf("frames %+v, want the packet then closed", got)
	}
}
