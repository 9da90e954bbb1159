package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Issue 10's targets for private chat between two cluster nodes (docs/cluster.md).
const (
	clusterTargetRatio = 2.0
	clusterTargetP99   = 5 * time.Millisecond
	clusterAdminKey    = "timgw-bench-admin"
)

// clusterOptions configure the cluster benchmark: the chat machinery's options, and the
// nodes' lease.
type clusterOptions struct {
	chatOptions
	lease time.Duration
}

// clusterPhase is what one phase (same node or across nodes) measured.
type clusterPhase struct {
	Chat      *chatResult   // ServerCPU is the sum over both gateways and their plugins
	CPUPerMsg time.Duration // gateway CPU (both nodes) per chat delivered
}

// clusterResult is what the cluster benchmark measured.
type clusterResult struct {
	Same, Across *clusterPhase
	Ratio        float64 // Across.CPUPerMsg / Same.CPUPerMsg
}

// runCluster is the cluster subcommand: it starts two gateway nodes joined over embedded
// NATS with storage off, then measures chats between users of the same node and between
// users of different nodes at the same offered rate.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) (*clusterResult, error) {
	o, gf, err := parseClusterFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	if err := enoughFiles(2*o.pairs, "-pairs"); err != nil {
		return nil, err
	}
	bin, cleanup, err := resolveBin(ctx, gf, stderr)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	nodes, err := startCluster(ctx, bin, gf, o)
	defer func() {
		for _, g := range nodes {
			if g != nil {
				if serr := g.stop(); serr != nil && err == nil {
					err = serr
				}
			}
		}
	}()
	if err != nil {
		return nil, err
	}

	printHeader(stdout, nodes[0], nodes[0].addr)
	fmt.Fprintf(stdout, "gateway b command: %s (pid %d, listening on %s)\n", shellJoin(nodes[1].cmd.Args), nodes[1].pid, nodes[1].addr)
	fmt.Fprintf(stdout, "cluster: proto=%s pairs=%d rate=%d/s window=%d senders=%d size=%dB warmup=%s duration=%s per phase; pair i has its sender on node i%%2, its receiver on the same node (phase same) or the other (phase across)\n",
		o.proto, o.pairs, o.rate, o.window, o.senders, o.size, o.warmup, o.duration)

	res := &clusterResult{}
	if res.Same, err = clusterRun(ctx, nodes, o, "same", stdout, stderr); err != nil {
		return nil, fmt.Errorf("phase same: %w", err)
	}
	if res.Across, err = clusterRun(ctx, nodes, o, "across", stdout, stderr); err != nil {
		return nil, fmt.Errorf("phase across: %w", err)
	}
	if res.Same.CPUPerMsg > 0 {
		res.Ratio = float64(res.Across.CPUPerMsg) / float64(res.Same.CPUPerMsg)
	}
	verdict := func(ok bool) string {
		if ok {
			return "meets"
		}
		return "MISSES"
	}
	fmt.Fprintf(stdout, "cluster pairs=%d rate=%d/s: cpu/msg same=%.1fus across=%.1fus ratio=%.2f; across p50=%s p99=%s max=%s\n",
		o.pairs, o.rate, us(res.Same.CPUPerMsg), us(res.Across.CPUPerMsg), res.Ratio,
		fmtDur(res.Across.Chat.P50), fmtDur(res.Across.Chat.P99), fmtDur(res.Across.Chat.Max))
	fmt.Fprintf(stdout, "target: cpu/msg across/same %.2f <= %.0fx (%s), across p99 %s <= %s (%s)\n",
		res.Ratio, clusterTargetRatio, verdict(res.Ratio <= clusterTargetRatio),
		fmtDur(res.Across.Chat.P99), clusterTargetP99, verdict(res.Across.Chat.P99 <= clusterTargetP99))
	return res, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// parseClusterFlags parses the cluster subcommand's flags and applies -gogc.
func parseClusterFlags(args []string, stderr io.Writer) (o clusterOptions, gf gatewayFlags, err error) {
	fs := flag.NewFlagSet("timgw-bench cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&gf.bin, "bin", "", "timgw binary to start (default: build ./cmd/timgw of the current module into a temporary directory)")
	gwlog := fs.String("gwlog", "", "write the gateways' logs to this file with .a and .b appended")
	fs.DurationVar(&o.lease, "lease", 3*time.Second, "the nodes' cluster.lease")
	src := o.register(fs, 10_000, "offered load in chats/s over all senders, the same in both phases")
	gogc := fs.Int("gogc", 400, "GOGC of the bench process")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: timgw-bench cluster [flags]

Starts two gateway nodes a and b joined over embedded NATS routes (storage off, hooks
without rate limits), waits until both list both in /admin/status, then runs two phases at
the same offered -rate: "same" (every pair's sender and receiver on one node) and
"across" (sender on one node, receiver on the other). It prints the gateway CPU per chat
(both processes, from /proc) of each phase, their ratio (target <= %.0fx) and the
across-node latency p50/p99 (target p99 <= %s).

Flags:
`, clusterTargetRatio, clusterTargetP99)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, gf, err
	}
	if err := checkProto(o.proto); err != nil {
		return o, gf, err
	}
	if o.pairs < 2 || o.window <= 0 || o.senders <= 0 || o.conc <= 0 || o.duration <= 0 || o.rate <= 0 || o.lease <= 0 {
		return o, gf, fmt.Errorf("%w: -pairs must be at least 2; -rate, -window, -senders, -c, -duration and -lease positive", errUsage)
	}
	if o.srcs, err = parseSources(*src); err != nil {
		return o, gf, err
	}
	gf.logFile = *gwlog
	debug.SetGCPercent(*gogc)
	return o, gf, nil
}

// freePorts reserves n loopback ports and releases them for the nodes' NATS routes.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// startCluster starts nodes a and b at once (each routes to both embedded NATS servers,
// docs/cluster.md) and waits until each lists both nodes. The nodes it started are
// returned even on error, for the caller to stop.
func startCluster(ctx context.Context, bin string, gf gatewayFlags, o clusterOptions) ([]*gateway, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "timgw-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // the gateways read their config at start
	ids := []string{"a", "b"}
	routes := fmt.Sprintf("127.0.0.1:%d, 127.0.0.1:%d", ports[0], ports[1])
	nodes := make([]*gateway, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		cfg := fmt.Sprintf(`storage: {plugin: none}
admin: {keys: [%q]}
%scluster: {enabled: true, node_id: %s, lease: %s, nats: {embedded: {cluster_listen: "127.0.0.1:%d", routes: [%s]}}}
`, clusterAdminKey, hookConfigs["nolimit"], id, o.lease, ports[i], routes)
		f := gf
		f.config = filepath.Join(dir, id+".yaml")
		if err := os.WriteFile(f.config, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		if gf.logFile != "" {
			f.logFile = gf.logFile + "." + id
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = startGateway(ctx, bin, f)
			if nodes[i] != nil {
				nodes[i].written = cfg
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nodes, err
	}
	for _, g := range nodes {
		if err := waitCluster(ctx, g, func(st *clusterStatus) bool { return len(st.Nodes) == len(ids) }); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// clusterStatus is parts.cluster of GET /admin/status (docs/cluster.md).
type clusterStatus struct {
	NodeID string `json:"node_id"`
	Nodes  []struct {
		ID    string `json:"id"`
		Users int    `json:"users"`
	} `json:"nodes"`
}

// users returns the users node id has, as g's status lists them.
func (s *clusterStatus) users(id string) int {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n.Users
		}
	}
	return -1
}

// status reads parts.cluster of g's GET /admin/status.
func status(ctx context.Context, g *gateway) (*clusterStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+"/admin/status", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Admin-Key", clusterAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /admin/status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /admin/status: %s", resp.Status)
	}
	var doc struct {
		Parts struct {
			Cluster *clusterStatus `json:"cluster"`
		} `json:"parts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("GET /admin/status: %w", err)
	}
	if doc.Parts.Cluster == nil {
		return nil, errors.New("GET /admin/status has no parts.cluster")
	}
	return doc.Parts.Cluster, nil
}

// waitCluster polls g's status for up to 30 s until ok holds.
func waitCluster(ctx context.Context, g *gateway, ok func(*clusterStatus) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		st, err := status(ctx, g)
		switch {
		case err == nil && ok(st):
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%+v", *st)
		}
		if aerr := g.alive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node at %s: cluster not as expected after 30s; last status: %s", g.addr, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clusterRun runs one phase: it logs in pair i's sender on node i%2 and its receiver on
// the same node (phase "same") or the other one ("across"), waits until both nodes see
// every user, then drives the pairs with the chat machinery (chat.go) and measures.
func clusterRun(ctx context.Context, nodes []*gateway, o clusterOptions, phase string, stdout, stderr io.Writer) (*clusterPhase, error) {
	n := o.pairs
	sendName := func(i int) string { return phase + "_s" + strconv.Itoa(i) }
	recvName := func(i int) string { return phase + "_r" + strconv.Itoa(i) }
	recvNode := func(i int) int {
		if phase == "across" {
			return 1 - i%2
		}
		return i % 2
	}
	send, recv := make([]net.Conn, n), make([]net.Conn, n)
	sendRest, recvRest := make([][]byte, n), make([][]byte, n)
	start := time.Now()
	users := make([]int, len(nodes)) // users logged in on each node
	for k, g := range nodes {
		d := newDialer(g.addr, o.proto, o.srcs, o.timeout)
		var si, ri []int
		for i := range n {
			if i%2 == k {
				si = append(si, i)
			}
			if recvNode(i) == k {
				ri = append(ri, i)
			}
		}
		users[k] = len(si) + len(ri)
		for _, side := range []struct {
			idx   []int
			name  func(int) string
			conns []net.Conn
			rests [][]byte
		}{{si, sendName, send, sendRest}, {ri, recvName, recv, recvRest}} {
			cs, rs, err := loginAll(ctx, d, len(side.idx), o.conc, func(j int) string { return side.name(side.idx[j]) }, nil)
			if err != nil {
				closeAll(send)
				closeAll(recv)
				return nil, withGateway(g, fmt.Errorf("log in on node %s: %w", g.addr, err))
			}
			for j, i := range side.idx {
				side.conns[i], side.rests[i] = cs[j], rs[j]
			}
		}
	}
	// Presence travels over the bus: wait until each node sees the other's users, so
	// that no chat of the warm-up goes to a receiver not known yet.
	for _, g := range nodes {
		if err := waitCluster(ctx, g, func(st *clusterStatus) bool {
			return st.users("a") == users[0] && st.users("b") == users[1]
		}); err != nil {
			closeAll(send)
			closeAll(recv)
			return nil, err
		}
	}
	fmt.Fprintf(stdout, "phase %s: %d connections logged in and seen by both nodes in %s\n", phase, 2*n, time.Since(start).Round(time.Millisecond))

	r := &chatRun{o: o.chatOptions, epoch: time.Now(), stop: make(chan struct{}), runErr: newRunErr(),
		send: send, recv: recv, wakes: make([]chan struct{}, o.senders)}
	for i := range r.wakes {
		r.wakes[i] = make(chan struct{}, 1)
	}
	r.pairs = make([]*pair, n)
	for i := range r.pairs {
		r.pairs[i] = &pair{send: send[i], recv: recv[i], to: recvName(i), wake: r.wakes[i%o.senders]}
	}
	defer r.close()
	r.start(sendRest, recvRest)

	serverCPU := func() (time.Duration, error) {
		var t time.Duration
		for _, g := range nodes {
			c, err := g.cpu()
			if err != nil {
				return 0, err
			}
			t += c + g.pluginCPU()
		}
		return t, nil
	}
	alive := func() error {
		for _, g := range nodes {
			if err := g.alive(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := errors.Join(r.watch(ctx, nil, o.warmup, stderr, phase+" warmup"), alive()); err != nil {
		return nil, err
	}
	r.measuring.Store(true)
	s0 := r.snapshot()
	c0, err0 := serverCPU()
	if err := errors.Join(r.watch(ctx, nil, o.duration, stderr, phase+" measure"), alive()); err != nil {
		return nil, err
	}
	s1 := r.snapshot()
	c1, err1 := serverCPU()
	r.measuring.Store(false)
	r.stopSenders()
	if err := r.drain(ctx); err != nil {
		return nil, err
	}
	if err := errors.Join(err0, err1); err != nil {
		return nil, fmt.Errorf("read the gateways' CPU: %w", err)
	}
	res := r.result(s0, s1)
	el := s1.t.Sub(s0.t).Seconds()
	res.ServerCPU = (c1 - c0).Seconds() / el
	out := &clusterPhase{Chat: res}
	if res.Delivered > 0 {
		out.CPUPerMsg = (c1 - c0) / time.Duration(res.Delivered)
	}
	fmt.Fprintf(stdout, "phase %s: delivered=%d rate=%.0f msgs/s p50=%s p90=%s p99=%s max=%s acks=%d sent=%d undelivered=%d gateways_cpu=%.0f%% (a+b) cpu/msg=%.1fus bench_cpu=%.0f%% machine_busy=%.0f%%\n",
		phase, res.Delivered, res.Rate, fmtDur(res.P50), fmtDur(res.P90), fmtDur(res.P99), fmtDur(res.Max),
		res.Acks, res.Sent, res.Undelivered, 100*res.ServerCPU, us(out.CPUPerMsg), 100*res.BenchCPU, 100*res.MachineCPU)
	if err := r.verdict(res); err != nil {
		return nil, err
	}
	return out, nil
}
