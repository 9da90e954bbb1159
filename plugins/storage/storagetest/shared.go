package storagetest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// SharedPlugin is a plugin whose store is shared: the plugin processes of several gateways
// open it with the same configuration (OpenResponse.Shared). RunShared checks it.
type SharedPlugin struct {
	// Command returns a new, unstarted command running the plugin executable (it speaks
	// the go-plugin handshake of storage.Handshake).
	Command func() *exec.Cmd
	// Config returns the Open configuration of the store called name, the same for every
	// process; the store is empty the first time a name is used. It removes the store
	// when t ends (t.Cleanup).
	Config func(t *testing.T, name string) []byte
}

// RunShared runs the shared-store conformance checks: several separate plugin processes
// opened on one store append to the same conversations at once, with chats new and
// duplicated across processes, and the store must keep the contract of a single one
// (plugins/storage/README.md): per conversation seqs 1..N each exactly once, each
// (from, id) stored once, every answer for a (from, id) naming the same seq, and its
// inbox entries written once. A variant kills one process with SIGKILL mid-run: still
// no gap, and no acknowledged chat lost or renumbered.
func RunShared(t *testing.T, p SharedPlugin) {
	t.Run("DeclaresShared", func(t *testing.T) {
		cfg := p.Config(t, newName())
		for _, pr := range startProcs(t, p, cfg, 2) {
			if !pr.c.Shared() {
				t.Errorf("process %d: Open did not answer shared", pr.n)
			}
		}
	})
	t.Run("ConcurrentProcesses", func(t *testing.T) { testShared(t, p, 3, false) })
	t.Run("KillOneProcess", func(t *testing.T) { testShared(t, p, 4, true) })
}

// proc is one plugin process and the SDK client talking to it.
type proc struct {
	n  int
	pc *plugin.Client
	c  *storage.Client
}

// startProcs starts n plugin processes and opens cfg in each; they are killed when t ends.
func startProcs(t *testing.T, p SharedPlugin, cfg []byte, n int) []*proc {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: "storagetest", Level: hclog.Error, Output: os.Stderr})
	out := make([]*proc, n)
	for i := range n {
		pc := plugin.NewClient(&plugin.ClientConfig{
			HandshakeConfig: storage.Handshake,
			VersionedPlugins: map[int]plugin.PluginSet{
				storage.ProtocolVersion: {storage.PluginName: &storage.GRPCPlugin{}},
			},
			Cmd:              p.Command(),
			AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
			Logger:           logger,
			StartTimeout:     30 * time.Second,
			GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(storage.CallOptions()...)},
		})
		t.Cleanup(pc.Kill)
		rpc, err := pc.Client()
		if err != nil {
			t.Fatalf("start plugin process %d: %v", i, err)
		}
		raw, err := rpc.Dispense(storage.PluginName)
		if err != nil {
			t.Fatalf("dispense plugin process %d: %v", i, err)
		}
		c, ok := raw.(*storage.Client)
		if !ok {
			t.Fatalf("plugin process %d: dispensed %T", i, raw)
		}
		if _, err := c.Open(ctx(t), &pb.OpenRequest{Config: cfg}); err != nil {
			t.Fatalf("open in plugin process %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		out[i] = &proc{n: i, pc: pc, c: c}
	}
	return out
}

// kill kills the process with SIGKILL, as kill -9 would.
func (pr *proc) kill() error {
	rc := pr.pc.ReattachConfig()
	if rc == nil || rc.Pid <= 0 {
		return fmt.Errorf("process %d: no pid", pr.n)
	}
	p, err := os.FindProcess(rc.Pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// sharedChat is one chat of the shared workload and what was answered for it.
type sharedChat struct {
	req     *pb.AppendRequest
	senders []int // the processes it is sent through (a process twice: sent twice by it)
	answers []*pb.AppendResult
}

func (c *sharedChat) key() string { return c.req.Message.From + "\x00" + c.req.Message.Id }

// sharedWorkload returns the chats: perConv in each of two private conversations (one
// written from both ends) and a group, each sent through one process, every third one
// also through the next process, every fifth one twice through its first.
func sharedWorkload(procs, perConv int) []*sharedChat {
	var out []*sharedChat
	for i := range perConv {
		from, to := "alice", "bob"
		if i%3 == 1 {
			from, to = "bob", "alice"
		}
		out = append(out,
			&sharedChat{req: chat(from, to, fmt.Sprintf("ab%d", i), fmt.Sprintf("chat %d of %s", i, from), int64(1000+i))},
			&sharedChat{req: chat("carol", "dave", fmt.Sprintf("cd%d", i), fmt.Sprintf("chat %d", i), int64(1000+i))})
		g := groupChat(fmt.Sprintf("m%d", i%3), "team", fmt.Sprintf("g%d", i))
		for _, m := range []string{"m0", "m1", "m2"} {
			if m != g.Message.From {
				g.Receivers = append(g.Receivers, m)
			}
		}
		out = append(out, &sharedChat{req: g})
	}
	for j, c := range out {
		c.senders = []int{j % procs}
		if j%3 == 0 {
			c.senders = append(c.senders, (j+1)%procs)
		}
		if j%5 == 0 {
			c.senders = append(c.senders, j%procs)
		}
	}
	return out
}

func testShared(t *testing.T, p SharedPlugin, nprocs int, killOne bool) {
	const perConv, workers = 40, 4
	cfg := p.Config(t, newName())
	procs := startProcs(t, p, cfg, nprocs)
	chats := sharedWorkload(nprocs, perConv)
	queues := make([][]*sharedChat, nprocs)
	sends := 0
	for _, c := range chats {
		for _, s := range c.senders {
			queues[s] = append(queues[s], c)
			sends++
		}
	}
	for i, q := range queues { // every other process runs backwards, so duplicates race
		if i%2 == 1 {
			slices.Reverse(q)
		}
	}
	var mu sync.Mutex
	var acked, victimAcks atomic.Int64
	killAt := make(chan struct{})
	var failures []string
	c := ctx(t)
	var wg sync.WaitGroup
	for i, pr := range procs {
		var next atomic.Int64
		for range workers {
			wg.Go(func() {
				for {
					k := int(next.Add(1) - 1)
					if k >= len(queues[i]) {
						return
					}
					sc := queues[i][k]
					res, err := pr.c.Append(c, []*pb.AppendRequest{sc.req})
					if err == nil && (len(res) != 1 || res[0].Error != "") {
						err = fmt.Errorf("result %v", res)
					}
					mu.Lock()
					if err != nil {
						// Only the killed process may fail; what it did not answer is
						// resent below, as a client resends an unanswered chat.
						if !killOne || pr.n != 0 {
							failures = append(failures, fmt.Sprintf("process %d, chat %s: %v", pr.n, sc.req.Message.Id, err))
						}
					} else {
						sc.answers = append(sc.answers, res[0])
					}
					mu.Unlock()
					if err == nil {
						acked.Add(1)
						if pr.n == 0 && victimAcks.Add(1) == int64(len(queues[0])/3) {
							close(killAt) // the victim is a third through its chats
						}
					}
				}
			})
		}
	}
	if killOne {
		select {
		case <-killAt:
		case <-c.Done():
		}
		// A random moment in the victim's next appends, so that across runs the kill lands
		// before, during and after their inserts.
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		if err := procs[0].kill(); err != nil {
			t.Fatalf("kill -9 plugin process 0: %v", err)
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
	live := procs
	if killOne {
		live = procs[1:]
		resent, found := 0, 0
		for _, sc := range chats {
			if len(sc.answers) > 0 {
				continue
			}
			resent++
			res, err := live[resent%len(live)].c.Append(c, []*pb.AppendRequest{sc.req})
			if err != nil || len(res) != 1 || res[0].Error != "" {
				t.Fatalf("resend %s after the kill: %v %v", sc.req.Message.Id, res, err)
			}
			if res[0].Duplicate {
				found++ // stored by the killed process, which died before answering
			}
			sc.answers = append(sc.answers, res[0])
		}
		if resent == 0 {
			t.Fatalf("the killed process had answered all of its %d chats: nothing was cut short", len(queues[0]))
		}
		t.Logf("process 0 killed after answering %d of its %d sends; %d unanswered chats resent, %d of them found stored",
			victimAcks.Load(), len(queues[0]), resent, found)
	}
	checkShared(t, live[0].c, chats, !killOne)
}

// checkShared checks the store against the chats and their answers. exactlyOneNew: every
// chat was answered once as new (no process died holding an answer).
func checkShared(t *testing.T, b storage.Backend, chats []*sharedChat, exactlyOneNew bool) {
	byConv := map[string][]*sharedChat{}
	var convs []string
	for _, sc := range chats {
		conv := sc.req.Message.Conv
		if byConv[conv] == nil {
			convs = append(convs, conv)
		}
		byConv[conv] = append(byConv[conv], sc)
	}
	for _, conv := range convs {
		want := byConv[conv]
		h := history(t, b, &pb.HistoryRequest{Conv: conv})
		stored := map[string]*pb.Message{}
		for i, m := range h.Messages {
			if m.Seq != int64(i+1) {
				t.Fatalf("%s: seqs %v, want 1..%d each once (a gap or a repeat at position %d)", conv, seqs(h.Messages), len(want), i)
			}
			k := m.From + "\x00" + m.Id
			if stored[k] != nil {
				t.Fatalf("%s: chat %s of %s stored twice (seqs %d and %d)", conv, m.Id, m.From, stored[k].Seq, m.Seq)
			}
			stored[k] = m
		}
		if len(h.Messages) != len(want) {
			t.Fatalf("%s: %d chats stored, want %d", conv, len(h.Messages), len(want))
		}
		for _, sc := range want {
			m := stored[sc.key()]
			if m == nil {
				t.Fatalf("%s: chat %s missing", conv, sc.req.Message.Id)
			}
			if m.Content != sc.req.Message.Content || m.To != sc.req.Message.To || m.GroupId != sc.req.Message.GroupId {
				t.Errorf("%s: chat %s stored as %v", conv, sc.req.Message.Id, m)
			}
			news := 0
			for _, a := range sc.answers {
				if a.Seq != m.Seq {
					t.Errorf("%s: chat %s answered with seq %d, stored with %d", conv, sc.req.Message.Id, a.Seq, m.Seq)
				}
				if !a.Duplicate {
					news++
				}
			}
			if news > 1 || (exactlyOneNew && news != 1) {
				t.Errorf("%s: chat %s answered as new %d times (answers %v)", conv, sc.req.Message.Id, news, sc.answers)
			}
		}
	}
	// Every receiver has one inbox entry per chat. (Cursors are not checked across
	// processes: see "Several gateways on one store" in docs/storage.md.)
	wantInbox := map[string]map[string]bool{} // user -> conv#seq
	for _, sc := range chats {
		for _, u := range sc.req.Receivers {
			if wantInbox[u] == nil {
				wantInbox[u] = map[string]bool{}
			}
			wantInbox[u][sc.req.Message.Conv+"\x00"+sc.key()] = true
		}
	}
	for u, want := range wantInbox {
		got := map[string]bool{}
		for _, e := range inbox(t, b, &pb.InboxRequest{User: u}).Entries {
			k := e.Message.Conv + "\x00" + e.Message.From + "\x00" + e.Message.Id
			if got[k] || !want[k] {
				t.Errorf("inbox of %s: unexpected or repeated entry %s of %s", u, e.Message.Id, e.Message.From)
			}
			got[k] = true
		}
		if len(got) != len(want) {
			t.Errorf("inbox of %s: %d entries, want %d", u, len(got), len(want))
		}
	}
}
