package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/packet"
)

// Issue 2's targets for private chat between 1,000 pairs on two cores.
const (
	chatTargetRate = 300_000
	chatTargetP99  = 10 * time.Millisecond
)

// Issue 12's targets at a fixed offered rate: storage none at 50,000 chats/s over 1,000
// pairs (delivery p99), and the stored ack (bolt, fsync before the ack) at 5,000/s.
const (
	rateTargetP99 = 2 * time.Millisecond
	ackTargetP50  = time.Millisecond
	ackTargetP99  = 5 * time.Millisecond
	ackTargetCPU  = 20 * time.Microsecond
)

// chatOptions configure the chat benchmark.
type chatOptions struct {
	proto    string
	pairs    int
	window   int
	rate     int
	tick     time.Duration
	senders  int
	size     int
	warmup   time.Duration
	duration time.Duration
	drain    time.Duration
	conc     int
	timeout  time.Duration
	srcs     []net.IP
	profile  string // -cpuprofile: the bench's own CPU profile, written here
}

// chatResult is what the chat benchmark measured.
type chatResult struct {
	Delivered   int64   // chats received by receivers during the measured window
	Rate        float64 // Delivered per second
	Acks        int64   // cmd 12 code 10000 received by senders during the window
	AckErrors   int64   // cmd 12 with another code, whole run
	Sent        int64   // chats sent, whole run
	Undelivered int64   // sent but not received after the drain, whole run
	Samples     uint64
	P50, P90    time.Duration // send to receipt by the receiver
	P99, Max    time.Duration
	AckSamples  uint64
	AckP50      time.Duration // send to the cmd 12 answer read by the sender
	AckP90      time.Duration
	AckP99      time.Duration
	AckMax      time.Duration
	Offered     int64         // -rate only: chats that became due during the window
	Backlog     int64         // -rate only: chats due but not sent (senders at their window) at the window's end
	TickLateP99 time.Duration // -rate only: how late the senders' ticks woke, p99 and max
	TickLateMax time.Duration
	ServerCPU   float64 // fraction of one core, during the window, plugin processes included; -1 when not measured
	PluginCPU   float64 // the part of ServerCPU used by the gateway's plugin processes
	BenchCPU    float64 // fraction of one core, during the window
	GatewayWait float64 // time the gateway's threads (plugins included) waited for a CPU, summed, per second of the window; -1 when not measured
	BenchWait   float64 // the same for the bench's threads
	MachineCPU  float64 // cores busy on the whole machine, during the window
}

// register registers the load flags the chat and cluster modes share; it returns -src.
func (o *chatOptions) register(fs *flag.FlagSet, rate int, rateHelp string) *string {
	fs.StringVar(&o.proto, "proto", protoTCP, "client protocol: tcp or ws")
	fs.IntVar(&o.pairs, "pairs", 1000, "sender/receiver pairs (u_s<i> sends to u_r<i>); 2 connections each")
	fs.IntVar(&o.window, "window", 32, "most chats a sender has in flight (sent, not yet received by its receiver)")
	fs.IntVar(&o.rate, "rate", rate, rateHelp)
	fs.DurationVar(&o.tick, "tick", time.Millisecond, "with -rate: the senders' pacing tick; each tick sends the chats due since the last (a late tick catches up)")
	fs.IntVar(&o.senders, "senders", 4, "goroutines that drive the senders (each owns pairs/senders pairs)")
	fs.IntVar(&o.size, "size", 64, "bytes of chat content (\"t=<send time> n=<seq> \" padded with x)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "send this long before measuring")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "after the window, wait at most this long for chats in flight to arrive")
	fs.IntVar(&o.conc, "c", 64, "connections being opened at a time")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "dial and login timeout per connection")
	return fs.String("src", "127.0.0.2-127.0.0.9", "client source addresses, a range A.B.C.x-A.B.C.y or a comma list; empty: let the kernel choose")
}

// enoughFiles raises the open-file limit and checks it covers conns client connections;
// lower names the flag to lower when it does not.
func enoughFiles(conns int, lower string) error {
	nofile, err := raiseNoFile()
	if err != nil {
		return err
	}
	if need := uint64(conns) + 64; nofile < need {
		return fmt.Errorf("open-file limit %d is below the %d this run needs (lower %s)", nofile, need, lower)
	}
	return nil
}

// runChat is the chat subcommand: it parses args, starts the gateway (unless -addr) and
// runs the benchmark.
func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) (*chatResult, error) {
	o, gf, addr, err := parseChatFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	if err := enoughFiles(2*o.pairs, "-pairs"); err != nil {
		return nil, err
	}

	var gw *gateway
	if addr == "" {
		bin, cleanup, err := resolveBin(ctx, gf, stderr)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		if gw, err = startGateway(ctx, bin, gf); err != nil {
			return nil, err
		}
		addr = gw.addr
	}
	res, err := chat(ctx, gw, addr, o, stdout, stderr)
	if gw != nil {
		if serr := gw.stop(); serr != nil && err == nil {
			err = serr
		}
	}
	return res, err
}

// parseChatFlags parses the chat subcommand's flags, checks them and applies -gogc. addr
// is -addr, empty when the bench starts its own gateway.
func parseChatFlags(args []string, stderr io.Writer) (o chatOptions, gf gatewayFlags, addr string, err error) {
	fs := flag.NewFlagSet("timgw-bench chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gf.register(fs, "nolimit")
	addrFlag := fs.String("addr", "", "use the gateway already running at this host:port instead of starting one (no server CPU figures)")
	src := o.register(fs, 0, "offered load in chats/s over all senders (open loop, still capped by -window); 0: as fast as the window allows")
	fs.StringVar(&o.profile, "cpuprofile", "", "write the bench's own CPU profile (warm-up and window) to this file, for go tool pprof")
	gogc := fs.Int("gogc", 400, "GOGC of the bench process (less client GC competing with the gateway for the CPUs)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: timgw-bench chat [flags]

Starts the gateway (or uses -addr), logs in -pairs receivers u_r<i> and senders u_s<i>, and
has every sender send private chats (cmd 11, chatType 2) to its receiver, keeping at most
-window chats in flight per sender. After -warmup it measures for -duration: chats
delivered per second at the receivers, send-to-receipt latency (the send time travels in
the content) as p50/p90/p99/max, cmd 12 acks per second at the senders, and the CPU time
of the gateway and of the bench. Issue 2 target: >= %d msgs/s with p99 <= %s.

Note Little's law: with pairs*window chats always in flight, mean latency is
pairs*window/rate. Use -rate (open loop) to measure latency at a given load.

Flags:
`, chatTargetRate, chatTargetP99)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, gf, "", err
	}
	if err := gf.check(fs); err != nil {
		return o, gf, "", err
	}
	if err := checkProto(o.proto); err != nil {
		return o, gf, "", err
	}
	if o.pairs <= 0 || o.window <= 0 || o.senders <= 0 || o.conc <= 0 || o.duration <= 0 || o.tick <= 0 || o.rate < 0 {
		return o, gf, "", fmt.Errorf("%w: -pairs, -window, -senders, -c, -duration and -tick must be positive, -rate not negative", errUsage)
	}
	if o.srcs, err = parseSources(*src); err != nil {
		return o, gf, "", err
	}
	if *addrFlag != "" && (gf.bin != "" || gf.config != "" || gf.storage != "" || gf.hooksSet || gf.logFile != "") {
		return o, gf, "", fmt.Errorf("%w: -addr uses a running gateway: -bin, -config, -storage, -hooks and -gwlog do not apply", errUsage)
	}
	debug.SetGCPercent(*gogc)
	return o, gf, *addrFlag, nil
}

// pair is one sender and its receiver.
type pair struct {
	send, recv net.Conn
	to         string        // the receiver's user id
	seq        int64         // chats sent; owned by the sender goroutine
	inflight   atomic.Int64  // sent, not yet received
	wake       chan struct{} // the owning sender goroutine's wake-up (shared by its pairs)

	// Writes whose chats are not all answered (cmd 12) yet, oldest first: the gateway
	// answers a connection's chats in order, so the next answer is for the oldest.
	ackMu   sync.Mutex
	unacked []sendMark
	ackHead int
}

// sendMark is one write of n chats at time t (run epoch ns).
type sendMark struct{ t, n int64 }

// sentAt notes n chats about to be written at t, before the write (the answer may come
// before Write returns).
func (p *pair) sentAt(t, n int64) {
	p.ackMu.Lock()
	if p.ackHead > 0 && p.ackHead == len(p.unacked) {
		p.unacked, p.ackHead = p.unacked[:0], 0
	} else if p.ackHead > 1024 && p.ackHead > len(p.unacked)/2 {
		p.unacked = p.unacked[:copy(p.unacked, p.unacked[p.ackHead:])]
		p.ackHead = 0
	}
	p.unacked = append(p.unacked, sendMark{t, n})
	p.ackMu.Unlock()
}

// answered takes n answers read at now off the oldest writes and, when h is not nil,
// records their latency (now - send time) in h. Answers beyond the writes noted (none
// when the gateway answers every chat once) are ignored.
func (p *pair) answered(now, n int64, h *histogram) {
	p.ackMu.Lock()
	for n > 0 && p.ackHead < len(p.unacked) {
		m := &p.unacked[p.ackHead]
		k := min(n, m.n)
		if h != nil {
			h.RecordN(time.Duration(now-m.t), uint64(k))
		}
		m.n -= k
		n -= k
		if m.n == 0 {
			p.ackHead++
		}
	}
	p.ackMu.Unlock()
}

// chatRun is the shared state of one chat run.
type chatRun struct {
	o         chatOptions
	gw        *gateway  // nil with -addr
	epoch     time.Time // send times are monotonic nanoseconds since epoch
	pairs     []*pair
	stop      chan struct{}
	stopping  atomic.Bool
	measuring atomic.Bool
	hist      histogram // send to receipt
	ackHist   histogram // send to cmd 12 answer
	tickLate  histogram // -rate: how late the pacing ticks woke
	offered   atomic.Int64
	owed      []atomic.Int64 // -rate: chats due but not sent yet, by sender goroutine

	sent, delivered, acks, ackErrs, other atomic.Int64

	send, recv       []net.Conn
	wakes            []chan struct{} // a sender goroutine's wake-up, by goroutine
	senders, readers sync.WaitGroup

	*runErr
	ackOnce sync.Once
	ackErr  string // body of the first refused chat
}

// runErr keeps the first failure of a run (a lost connection, a refused request) and
// signals it by closing failed.
type runErr struct {
	once     sync.Once
	firstErr error
	failed   chan struct{}
}

func newRunErr() *runErr { return &runErr{failed: make(chan struct{})} }

func (e *runErr) fail(err error) {
	e.once.Do(func() { e.firstErr = err; close(e.failed) })
}

// check returns the first failure: a recorded one, a dead gateway, a cancelled run.
func (e *runErr) check(ctx context.Context, gw *gateway) error {
	select {
	case <-e.failed:
		return withGateway(gw, e.firstErr)
	default:
	}
	if gw != nil {
		if err := gw.alive(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (r *chatRun) now() int64 { return int64(time.Since(r.epoch)) }

// chat runs the chat benchmark against the gateway at addr (gw, when not nil, is the one
// the bench started): log in, send and receive through a warm-up and the measured window,
// wait for the chats in flight, then report.
func chat(ctx context.Context, gw *gateway, addr string, o chatOptions, stdout, stderr io.Writer) (*chatResult, error) {
	printChatHeader(stdout, gw, addr, o)
	r, sendRest, recvRest, err := connectChat(ctx, gw, addr, o, stdout)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.start(sendRest, recvRest)

	if o.profile != "" {
		stopProfile, err := startProfile(o.profile)
		if err != nil {
			return nil, err
		}
		defer stopProfile()
	}
	if err := r.watch(ctx, gw, o.warmup, stderr, "warmup"); err != nil {
		return nil, err
	}
	r.measuring.Store(true)
	s0 := r.snapshot()
	if err := r.watch(ctx, gw, o.duration, stderr, "measure"); err != nil {
		return nil, err
	}
	s1 := r.snapshot()
	r.measuring.Store(false)
	r.stopSenders()
	if err := r.drain(ctx); err != nil {
		return nil, err
	}

	res := r.result(s0, s1)
	r.report(stdout, res, s1.t.Sub(s0.t).Seconds())
	return res, r.verdict(res)
}

// startProfile starts the bench's CPU profile into path; the returned func stops it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// printChatHeader prints the run's header and its parameters.
func printChatHeader(stdout io.Writer, gw *gateway, addr string, o chatOptions) {
	printHeader(stdout, gw, addr)
	rateDesc := "unlimited (closed loop)"
	if o.rate > 0 {
		rateDesc = fmt.Sprintf("%d/s offered", o.rate)
	}
	fmt.Fprintf(stdout, "chat: proto=%s pairs=%d (%d connections) window=%d rate=%s senders=%d size=%dB warmup=%s duration=%s sources=%s\n",
		o.proto, o.pairs, 2*o.pairs, o.window, rateDesc, o.senders, o.size, o.warmup, o.duration, describeSources(o.srcs))
}

// connectChat logs in the receivers u_r<i> and the senders u_s<i> and pairs them up. It
// returns the bytes each connection received after its login response.
func connectChat(ctx context.Context, gw *gateway, addr string, o chatOptions, stdout io.Writer) (r *chatRun, sendRest, recvRest [][]byte, err error) {
	d := newDialer(addr, o.proto, o.srcs, o.timeout)
	start := time.Now()
	recv, recvRest, err := loginAll(ctx, d, o.pairs, o.conc, func(i int) string { return "u_r" + strconv.Itoa(i) }, nil)
	if err != nil {
		return nil, nil, nil, withGateway(gw, fmt.Errorf("log in receivers: %w", err))
	}
	send, sendRest, err := loginAll(ctx, d, o.pairs, o.conc, func(i int) string { return "u_s" + strconv.Itoa(i) }, nil)
	if err != nil {
		closeAll(recv)
		return nil, nil, nil, withGateway(gw, fmt.Errorf("log in senders: %w", err))
	}
	fmt.Fprintf(stdout, "connected: %d connections logged in in %s\n", 2*o.pairs, time.Since(start).Round(time.Millisecond))

	r = &chatRun{o: o, gw: gw, epoch: time.Now(), stop: make(chan struct{}), runErr: newRunErr(),
		send: send, recv: recv, wakes: make([]chan struct{}, o.senders)}
	for i := range r.wakes {
		r.wakes[i] = make(chan struct{}, 1)
	}
	r.pairs = make([]*pair, o.pairs)
	for i := range r.pairs {
		r.pairs[i] = &pair{send: send[i], recv: recv[i], to: "u_r" + strconv.Itoa(i), wake: r.wakes[i%o.senders]}
	}
	return r, sendRest, recvRest, nil
}

// start starts a reader per connection and the -senders sender goroutines, each driving
// every -senders-th pair.
func (r *chatRun) start(sendRest, recvRest [][]byte) {
	for i, p := range r.pairs {
		r.readers.Add(2)
		go func() {
			defer r.readers.Done()
			r.readErr("receiver", i, readLoop(p.recv, r.o.proto, recvRest[i], &recvSink{r: r, p: p}))
		}()
		go func() {
			defer r.readers.Done()
			r.readErr("sender", i, readLoop(p.send, r.o.proto, sendRest[i], &ackSink{r: r, p: p}))
		}()
	}
	r.owed = make([]atomic.Int64, r.o.senders)
	for g := range r.o.senders {
		var mine []*pair
		for i := g; i < len(r.pairs); i += r.o.senders {
			mine = append(mine, r.pairs[i])
		}
		if len(mine) == 0 {
			continue
		}
		r.senders.Add(1)
		go func() {
			defer r.senders.Done()
			if r.o.rate > 0 {
				r.sendPaced(g, mine, splitRate(int64(r.o.rate), r.o.senders, g))
			} else {
				r.sendLoop(mine, r.wakes[g])
			}
		}()
	}
}

// stopSenders stops the senders. One blocked in a write to a gateway that stopped reading
// is released by closing the sending connections after a grace period.
func (r *chatRun) stopSenders() {
	if r.stopping.CompareAndSwap(false, true) {
		close(r.stop)
	}
	done := make(chan struct{})
	go func() { r.senders.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		closeAll(r.send)
		<-done
	}
}

// close stops the senders, closes every connection and waits for the readers.
func (r *chatRun) close() {
	r.stopSenders()
	closeAll(r.send)
	closeAll(r.recv)
	r.readers.Wait()
}

// drain waits at most -drain for the chats in flight.
func (r *chatRun) drain(ctx context.Context) error {
	deadline := time.Now().Add(r.o.drain)
	for r.inflight() > 0 && time.Now().Before(deadline) {
		if err := r.check(ctx, r.gw); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// chatSnap is the counters and CPU times at one instant of a run.
type chatSnap struct {
	t               time.Time
	delivered, acks int64
	offered         int64
	server, bench   time.Duration
	serverOK        bool
	plugins         time.Duration
	busy, total     time.Duration
	gwWait, wait    time.Duration // run-queue wait of the gateway (and plugins) and of the bench
}

func (r *chatRun) snapshot() chatSnap {
	s := cpuSnapshot(r.gw)
	s.delivered, s.acks, s.offered = r.delivered.Load(), r.acks.Load(), r.offered.Load()
	return s
}

// cpuSnapshot reads the CPU times used so far by the gateway (unless gw is nil; its plugin
// processes included), by the bench and by the whole machine.
func cpuSnapshot(gw *gateway) chatSnap {
	s := chatSnap{t: time.Now(), bench: selfCPU(), wait: runqWait(os.Getpid())}
	s.busy, s.total, _ = machineCPU()
	if gw != nil {
		s.gwWait = gw.runqWait()
		var err error
		s.server, err = gw.cpu()
		s.serverOK = err == nil
		s.plugins = gw.pluginCPU()
		s.server += s.plugins
	}
	return s
}

// machineCores is how many cores the whole machine kept busy, on average, from s0 to s1.
func machineCores(s0, s1 chatSnap) float64 {
	if s1.total <= s0.total {
		return 0
	}
	return float64(runtime.NumCPU()) * float64(s1.busy-s0.busy) / float64(s1.total-s0.total)
}

// result computes the run's numbers over the window from s0 to s1.
func (r *chatRun) result(s0, s1 chatSnap) *chatResult {
	el := s1.t.Sub(s0.t).Seconds()
	res := &chatResult{
		Delivered: s1.delivered - s0.delivered, Acks: s1.acks - s0.acks, AckErrors: r.ackErrs.Load(),
		Sent: r.sent.Load(), Undelivered: r.inflight(), Samples: r.hist.Count(),
		P50: r.hist.Quantile(0.50), P90: r.hist.Quantile(0.90), P99: r.hist.Quantile(0.99), Max: r.hist.Max(),
		AckSamples: r.ackHist.Count(), AckP50: r.ackHist.Quantile(0.50), AckP90: r.ackHist.Quantile(0.90),
		AckP99: r.ackHist.Quantile(0.99), AckMax: r.ackHist.Max(),
		Offered: s1.offered - s0.offered, TickLateP99: r.tickLate.Quantile(0.99), TickLateMax: r.tickLate.Max(),
		ServerCPU: -1, BenchCPU: (s1.bench - s0.bench).Seconds() / el, GatewayWait: -1,
		BenchWait: (s1.wait - s0.wait).Seconds() / el,
	}
	for i := range r.owed {
		res.Backlog += r.owed[i].Load()
	}
	res.Rate = float64(res.Delivered) / el
	res.MachineCPU = machineCores(s0, s1)
	if r.gw != nil && s0.serverOK && s1.serverOK {
		res.ServerCPU = max(0, (s1.server-s0.server).Seconds()/el)
		res.PluginCPU = max(0, (s1.plugins-s0.plugins).Seconds()/el)
		res.GatewayWait = max(0, (s1.gwWait-s0.gwWait).Seconds()/el)
	}
	return res
}

// report prints the result of a window of el seconds: the summary line, the CPU split,
// the efficiency and the verdict against issue 2's targets.
func (r *chatRun) report(stdout io.Writer, res *chatResult, el float64) {
	o := r.o
	cpu := fmt.Sprintf("bench_cpu=%.0f%%", 100*res.BenchCPU)
	if res.ServerCPU >= 0 {
		cpu = fmt.Sprintf("server_cpu=%.0f%% %s", 100*res.ServerCPU, cpu)
	}
	offered := ""
	if o.rate > 0 {
		offered = fmt.Sprintf(" offered=%d/s", o.rate)
	}
	fmt.Fprintf(stdout, "chat proto=%s pairs=%d window=%d%s duration=%s delivered=%d rate=%.0f msgs/s p50=%s p90=%s p99=%s max=%s mean=%s ack_p50=%s ack_p90=%s ack_p99=%s ack_max=%s acks=%d ack_rate=%.0f/s ack_errors=%d sent=%d undelivered=%d %s\n",
		o.proto, o.pairs, o.window, offered, o.duration, res.Delivered, res.Rate, fmtDur(res.P50), fmtDur(res.P90), fmtDur(res.P99), fmtDur(res.Max),
		fmtDur(r.hist.Mean()), fmtDur(res.AckP50), fmtDur(res.AckP90), fmtDur(res.AckP99), fmtDur(res.AckMax),
		res.Acks, float64(res.Acks)/el, res.AckErrors, res.Sent, res.Undelivered, cpu)
	fmt.Fprintf(stdout, "latency from the send: delivery (receiver has it) p50=%s p90=%s p99=%s max=%s; ack (sender has its cmd 12) p50=%s p90=%s p99=%s max=%s\n",
		fmtDur(res.P50), fmtDur(res.P90), fmtDur(res.P99), fmtDur(res.Max), fmtDur(res.AckP50), fmtDur(res.AckP90), fmtDur(res.AckP99), fmtDur(res.AckMax))
	if o.rate > 0 {
		want := float64(o.rate) * el
		fmt.Fprintf(stdout, "pacing: offered %d chats in the window = %.2f%% of rate x window (%.0f); ticks of %s woke late by p99=%s max=%s; backlog %d when the senders stopped\n",
			res.Offered, 100*float64(res.Offered)/want, want, o.tick, fmtDur(res.TickLateP99), fmtDur(res.TickLateMax), res.Backlog)
	}
	other := "unknown"
	if res.ServerCPU >= 0 {
		other = fmt.Sprintf("%.0f%%", 100*max(0, res.MachineCPU-res.ServerCPU-res.BenchCPU))
	}
	plugins := ""
	if res.PluginCPU > 0 {
		plugins = fmt.Sprintf(" (plugin processes %.0f%% of it)", 100*res.PluginCPU)
	}
	fmt.Fprintf(stdout, "cpu during the window, of %d%% (%d cores): machine busy %.0f%% = gateway %s%s + bench %.0f%% + other processes %s\n",
		100*runtime.NumCPU(), runtime.NumCPU(), 100*res.MachineCPU, pct(res.ServerCPU), plugins, 100*res.BenchCPU, other)
	fmt.Fprintf(stdout, "waiting for a CPU (ready to run, on a run queue; threads summed, per second of the window): gateway %s, bench %.0fms/s\n",
		msPerS(res.GatewayWait), 1e3*res.BenchWait)
	if res.ServerCPU > 0 && res.Rate > 0 {
		fmt.Fprintf(stdout, "efficiency: %.0f chats delivered per gateway CPU-second (%.1f us of gateway CPU per chat, its ack included)\n",
			res.Rate/res.ServerCPU, 1e6*res.ServerCPU/res.Rate)
		fmt.Fprintf(stdout, "cpu per chat: gateway+plugins=%.1fus = gateway process %.1fus + plugin processes %.1fus (per delivered chat, its ack included)\n",
			1e6*res.ServerCPU/res.Rate, 1e6*(res.ServerCPU-res.PluginCPU)/res.Rate, 1e6*res.PluginCPU/res.Rate)
	}
	verdict := func(ok bool) string {
		if ok {
			return "meets"
		}
		return "MISSES"
	}
	if o.rate == 0 {
		fmt.Fprintf(stdout, "target: rate %s >= %d msgs/s (%s), p99 %s <= %s (%s)\n",
			fmt.Sprintf("%.0f", res.Rate), chatTargetRate, verdict(res.Rate >= chatTargetRate),
			fmtDur(res.P99), chatTargetP99, verdict(res.P99 <= chatTargetP99))
	} else {
		// Issue 12's fixed-rate targets; which applies depends on -rate and -storage.
		cpu := "not measured"
		if res.ServerCPU >= 0 && res.Rate > 0 {
			per := time.Duration(float64(time.Second) * res.ServerCPU / res.Rate)
			cpu = fmt.Sprintf("%.1fus <= %.0fus (%s)", per.Seconds()*1e6, ackTargetCPU.Seconds()*1e6, verdict(per <= ackTargetCPU))
		}
		fmt.Fprintf(stdout, "targets at a fixed rate (issue 12): storage none at 50,000/s: delivery p99 %s <= %s (%s); bolt at 5,000/s: ack p50 %s <= %s (%s), ack p99 %s <= %s (%s), gateway+plugins cpu/chat %s\n",
			fmtDur(res.P99), rateTargetP99, verdict(res.P99 <= rateTargetP99),
			fmtDur(res.AckP50), ackTargetP50, verdict(res.AckP50 <= ackTargetP50),
			fmtDur(res.AckP99), ackTargetP99, verdict(res.AckP99 <= ackTargetP99), cpu)
	}
	if n := r.other.Load(); n > 0 {
		fmt.Fprintf(stdout, "note: receivers got %d packets that were not chats\n", n)
	}
}

// verdict fails a run whose numbers cannot be trusted: a refused chat, nothing delivered,
// chats lost.
func (r *chatRun) verdict(res *chatResult) error {
	switch {
	case res.AckErrors > 0:
		return fmt.Errorf("%d chats refused; first response: %s", res.AckErrors, r.ackErr)
	case res.Delivered == 0:
		return withGateway(r.gw, errors.New("no chat was delivered during the measured window"))
	case res.Undelivered > 0:
		return fmt.Errorf("%d chats sent were not delivered within %s after the window", res.Undelivered, r.o.drain)
	}
	return nil
}

// msPerS prints a per-second fraction as ms/s, or "not measured" when negative.
func msPerS(f float64) string {
	if f < 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.0fms/s", 1e3*f)
}

func pct(f float64) string {
	if f < 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// withGateway adds the gateway's state to err when the gateway is gone.
func withGateway(gw *gateway, err error) error {
	if gw == nil {
		return err
	}
	if aerr := gw.alive(); aerr != nil {
		return fmt.Errorf("%w\n%v", err, aerr)
	}
	return err
}

func (r *chatRun) inflight() int64 {
	var n int64
	for _, p := range r.pairs {
		n += p.inflight.Load()
	}
	return n
}

func (r *chatRun) readErr(role string, i int, err error) {
	if r.stopping.Load() {
		return
	}
	r.fail(fmt.Errorf("%s %d: connection lost: %w", role, i, err))
}

// watch waits for d, printing the rates of each second to log, with the CPU split of that
// second (gateway, bench, other processes; 100% is one core).
func (r *chatRun) watch(ctx context.Context, gw *gateway, d time.Duration, log io.Writer, phase string) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	end := time.After(d)
	type sample struct {
		t                   time.Time
		del, ack            int64
		srv, self, busy, tt time.Duration
	}
	take := func() sample {
		s := sample{t: time.Now(), del: r.delivered.Load(), ack: r.acks.Load(), self: selfCPU()}
		if gw != nil {
			s.srv, _ = gw.cpu()
			s.srv += gw.pluginCPU()
		}
		s.busy, s.tt, _ = machineCPU()
		return s
	}
	last := take()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.failed:
			return r.check(ctx, gw)
		case <-end:
			return r.check(ctx, gw)
		case <-t.C:
			if err := r.check(ctx, gw); err != nil {
				return err
			}
			cur := take()
			s := cur.t.Sub(last.t).Seconds()
			cpu := ""
			if cur.tt > last.tt {
				cores := float64(runtime.NumCPU())
				busy := cores * float64(cur.busy-last.busy) / float64(cur.tt-last.tt)
				srv, self := (cur.srv-last.srv).Seconds()/s, (cur.self-last.self).Seconds()/s
				if gw != nil {
					cpu = fmt.Sprintf(", cpu gateway %.0f%% bench %.0f%% other %.0f%%", 100*srv, 100*self, 100*max(0, busy-srv-self))
				} else {
					cpu = fmt.Sprintf(", cpu bench %.0f%% rest of the machine %.0f%%", 100*self, 100*max(0, busy-self))
				}
			}
			fmt.Fprintf(log, "  %s: %.0f delivered/s, %.0f acks/s, %d in flight%s\n",
				phase, float64(cur.del-last.del)/s, float64(cur.ack-last.ack)/s, r.inflight(), cpu)
			last = cur
		}
	}
}

// sendLoop drives the senders of mine in the closed loop (no -rate) until the run
// stops: each pass tops every sender up to its window, writing the new chats of one sender
// with one write; when every sender is at its window, it sleeps until a receiver frees a
// slot. sendPaced is the open-loop (-rate) driver.
func (r *chatRun) sendLoop(mine []*pair, wake chan struct{}) {
	o := r.o
	var body, buf []byte
	window := int64(o.window)
	cursor := 0
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		sentAny := false
		for k := range mine {
			p := mine[(cursor+k)%len(mine)]
			n := window - p.inflight.Load()
			if n <= 0 {
				continue
			}
			now := r.now()
			buf, body = p.frames(buf[:0], body, n, now, o.size, o.proto)
			if _, err := p.send.Write(buf); err != nil {
				if !r.stopping.Load() {
					r.fail(fmt.Errorf("send: %w", err))
				}
				return
			}
			r.sent.Add(n)
			sentAny = true
		}
		cursor++
		if sentAny {
			continue
		}
		// Every sender is at its window: wait for a receiver to free a slot.
		select {
		case <-wake:
		case <-r.stop:
			return
		}
	}
}

// contentKey precedes the send time in a chat body, as the gateway forwards it.
var contentKey = []byte(`"content":"t=`)

// appendChat appends the body of a private chat to `to` whose content carries the send
// time (monotonic ns since the run's epoch) and the sender's sequence number (so that no
// two chats are identical), padded to size bytes.
// frames appends to buf the frames of p's next n chats, sent at now (body is scratch
// space), and counts them in flight.
func (p *pair) frames(buf, body []byte, n, now int64, size int, proto string) ([]byte, []byte) {
	for range n {
		p.seq++
		body = appendChat(body[:0], p.to, now, p.seq, size)
		buf = appendFrame(buf, proto, packet.CmdChatReq, body)
	}
	p.inflight.Add(n)
	p.sentAt(now, n)
	return buf, body
}

func appendChat(dst []byte, to string, sentNs, seq int64, size int) []byte {
	dst = append(dst, `{"cmd":11,"chatType":2,"msgType":0,"to":"`...)
	dst = append(dst, to...)
	dst = append(dst, `","content":"`...)
	return appendContent(dst, sentNs, seq, size)
}

// appendContent appends a timed chat content, "t=<sentNs> n=<seq> " padded with x to size
// bytes, then the closing quote and brace of the body.
func appendContent(dst []byte, sentNs, seq int64, size int) []byte {
	start := len(dst)
	dst = append(dst, "t="...)
	dst = strconv.AppendInt(dst, sentNs, 10)
	dst = append(dst, " n="...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, ' ')
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// recvSink counts the chats a receiver gets and records their latency.
type recvSink struct {
	r   *chatRun
	p   *pair
	n   int64
	now int64 // when the bytes at hand were read; 0 until the first packet of a batch
}

func (s *recvSink) packet(cmd packet.Cmd, body []byte) {
	if cmd != packet.CmdChatReq {
		s.r.other.Add(1)
		return
	}
	s.n++
	if !s.r.measuring.Load() {
		return
	}
	if t, ok := sentTime(body); ok {
		if s.now == 0 {
			s.now = s.r.now()
		}
		s.r.hist.Record(time.Duration(s.now - t))
	}
}

// sentTime reads the send time from a delivered chat whose content appendContent wrote.
func sentTime(body []byte) (int64, bool) {
	i := bytes.Index(body, contentKey)
	if i < 0 {
		return 0, false
	}
	return parseDigits(body[i+len(contentKey):])
}

func (s *recvSink) flush() {
	s.now = 0
	if s.n == 0 {
		return
	}
	s.p.inflight.Add(-s.n)
	s.r.delivered.Add(s.n)
	s.n = 0
	select {
	case s.p.wake <- struct{}{}:
	default:
	}
}

// ackSink counts the cmd 12 responses a sender gets and records their latency (send to
// answer).
type ackSink struct {
	r         *chatRun
	p         *pair
	ok, fails int64
}

func (s *ackSink) packet(cmd packet.Cmd, body []byte) {
	if cmd != packet.CmdChatResp {
		return
	}
	if code, _ := jsonInt(body, "code"); packet.Status(code) == packet.StatusOK {
		s.ok++
		return
	}
	s.fails++
	s.r.ackOnce.Do(func() { s.r.ackErr = string(body) })
	// A refused chat never reaches the receiver: the run's numbers would be wrong.
	s.r.fail(fmt.Errorf("the gateway refused a chat: %s", body))
}

func (s *ackSink) flush() {
	if n := s.ok + s.fails; n > 0 {
		var h *histogram
		if s.r.measuring.Load() {
			h = &s.r.ackHist
		}
		s.p.answered(s.r.now(), n, h)
	}
	if s.ok > 0 {
		s.r.acks.Add(s.ok)
		s.ok = 0
	}
	if s.fails > 0 {
		s.r.ackErrs.Add(s.fails)
		s.fails = 0
	}
}

// fmtDur prints a duration with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Nanosecond).String()
}
