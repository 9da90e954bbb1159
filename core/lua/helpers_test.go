package lua

import (
	"bytes"
	"context"
	"embed"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/scripts"
)

// logBuffer is a goroutine-safe log sink for assertions on log output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// presence is a settable Presence.
type presence struct {
	mu     sync.Mutex
	online map[string]bool
}

func (p *presence) Online(u string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.online[u]
}

func (p *presence) set(u string, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.online == nil {
		p.online = map[string]bool{}
	}
	p.online[u] = on
}

// testCfg is a hooks configuration for dir loading every *.lua in name order, with no
// vars and the default policies.
func testCfg(dir string) config.Hooks {
	c := config.DefaultHooks()
	c.Dir = dir
	c.Scripts = []string{"*.lua"}
	c.Vars = nil
	c.Timeout = time.Second // wall-clock: generous, tests run on loaded machines
	c.PoolSize = 4
	return c
}

// writeFiles writes name → content into dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type testEnv struct {
	rt   *Runtime
	dir  string
	logs *logBuffer
	pres *presence
}

// newEnv writes files into a temp dir and starts a Runtime on it; mutate may adjust
// the configuration first.
func newEnv(t testing.TB, files map[string]string, mutate func(*config.Hooks)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	cfg := testCfg(dir)
	if mutate != nil {
		mutate(&cfg)
	}
	env := &testEnv{dir: dir, logs: &logBuffer{}, pres: &presence{}}
	rt, err := New(cfg, Options{
		Logger:   slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Presence: env.pres,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	env.rt = rt
	return env
}

// chat builds a private text message from → to.
func chat(from, to, content string) *packet.Chat {
	return &packet.Chat{From: packet.Str(from), To: packet.Str(to), Cmd: 11, ChatType: packet.ChatTypePrivate, Content: content}
}

// send runs the message hook on a private chat and returns the reply and the chat.
func (e *testEnv) send(from, to, content string) (hook.MessageReply, *packet.Chat) {
	c := chat(from, to, content)
	rep := e.rt.Message(context.Background(), &hook.MessageRequest{Sender: from, Protocol: hook.ProtocolTCP, Chat: c})
	return rep, c
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// scriptsFS is the embedded copy of the shipped scripts.
func scriptsFS() embed.FS { return scripts.FS }
