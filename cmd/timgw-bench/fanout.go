package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/packet"
)

// fanoutOptions configure the fanout benchmark.
type fanoutOptions struct {
	protos       []string // tcp, ws, or both in turn
	members      int
	messages     int
	rate         int
	joinConc     int
	size         int
	group        string
	noticeMax    int // groups.notice_max_members written into the gateway's config; -1: left out
	timeout      time.Duration
	setupTimeout time.Duration
	drain        time.Duration
	heartbeat    time.Duration // every connection sends cmd 13 this often; 0: never
	srcs         []net.IP
}

// fanoutResult is what one fanout run (one protocol, one gateway) measured.
type fanoutResult struct {
	Proto   string
	Members int

	Login        time.Duration // logging in every member
	JoinSetup    time.Duration // first join sent to the last join answer (cmd 8) received
	NoticesSetup int64         // cmd 9 received during JoinSetup, all members together
	NoticesTotal int64         // cmd 9 received until they stopped coming
	NoticesQuiet time.Duration // from the last join answer until notices stopped

	Sent, Acks          int64 // group chats sent, and answered with cmd 12 code 10000
	Expected, Delivered int64 // deliveries: Sent * (Members-1), and cmd 11 received by members
	Short               int   // members that received fewer chats than were sent
	Window              time.Duration
	Samples             uint64
	P50, P99, Max       time.Duration

	ServerCPU   time.Duration // gateway (and its plugin processes) during the window
	PerDelivery time.Duration // ServerCPU / Delivered
	BenchCPU    float64       // fraction of one core, during the window
	MachineCPU  float64       // cores busy on the whole machine, during the window
}

const fanoutUsage = `Usage: timgw-bench fanout [flags]

Server CPU per delivery of a large group chat, and the time to set the group up.
Starts the gateway, logs in -members users m<i> (-join-conc at a time) and has each send
cmd 7 to join group -group, at most -join-conc joins unanswered at a time. "join setup"
is the time from the first join sent to the last cmd 8 answer (10011) received; the cmd 9
notices the members receive meanwhile are counted (every join is announced to the members
in the group when the notice goes out: members*(members-1)/2 to members*(members-1)
notices, unless the gateway's groups.notice_max_members suppresses them; -notice-max
writes that key). Once notices stop, member m0 sends -messages group chats at -rate per
second (open loop, paced), each carrying its send time; the others count the deliveries
and record send-to-receipt latency. Members send a heartbeat every -heartbeat. Over the send window (first send until every delivery arrived) the bench reads
the gateway's CPU time (/proc, plugin processes included) and prints it per delivery,
with the latency p50/p99/max, the bench's own CPU and the machine's busy share.

Flags:
`

// runFanout is the fanout subcommand: for each protocol it starts a fresh gateway, runs
// the benchmark and stops the gateway.
func runFanout(ctx context.Context, args []string, stdout, stderr io.Writer) ([]*fanoutResult, error) {
	o, gf, err := parseFanoutFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	if err := enoughFiles(o.members, "-members"); err != nil {
		return nil, err
	}
	bin, cleanup, err := resolveBin(ctx, gf, stderr)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var results []*fanoutResult
	for _, proto := range o.protos {
		gw, err := startGateway(ctx, bin, gf)
		if err != nil {
			return results, noticeMaxRefused(o.noticeMax, err)
		}
		res, err := fanout(ctx, gw, proto, o, stdout, stderr)
		if serr := gw.stop(); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return results, fmt.Errorf("fanout over %s: %w", proto, err)
		}
		results = append(results, res)
	}
	return results, nil
}

// parseFanoutFlags parses the fanout subcommand's flags, checks them and applies -gogc.
func parseFanoutFlags(args []string, stderr io.Writer) (o fanoutOptions, gf gatewayFlags, err error) {
	fs := flag.NewFlagSet("timgw-bench fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gf.register(fs, "nolimit")
	proto := fs.String("proto", protoTCP, "client protocol: tcp, ws, or both (tcp then ws, each on a fresh gateway)")
	fs.IntVar(&o.members, "members", 10000, "group members, one connection each (users m0..m<n-1>; m0 sends)")
	fs.IntVar(&o.messages, "messages", 200, "group chats m0 sends")
	fs.IntVar(&o.rate, "rate", 20, "group chats per second (open loop, paced)")
	fs.IntVar(&o.joinConc, "join-conc", 64, "logins at a time, then joins sent and not yet answered at a time")
	fs.IntVar(&o.size, "size", 64, "bytes of chat content (\"t=<send time> n=<seq> \" padded with x)")
	fs.StringVar(&o.group, "group", "fanout", "the group's id")
	fs.IntVar(&o.noticeMax, "notice-max", -1, "write groups.notice_max_members: N into the gateway's config (no cmd 9/10 notices above N members; 0: at any size); -1: leave the key out")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "dial and login timeout per connection")
	fs.DurationVar(&o.setupTimeout, "setup-timeout", 10*time.Minute, "longest wait for every join answer, and then again for the notices to stop")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "after the last send, wait at most this long for every delivery")
	fs.DurationVar(&o.heartbeat, "heartbeat", time.Minute, "every member sends a heartbeat (cmd 13) this often, spread over the interval, so that the gateway's limits.idle_timeout does not close members waiting through a long setup; 0: none")
	src := fs.String("src", "127.0.0.2-127.0.0.9", "client source addresses, a range A.B.C.x-A.B.C.y or a comma list; empty: let the kernel choose")
	gogc := fs.Int("gogc", 400, "GOGC of the bench process")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), fanoutUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, gf, err
	}
	if err := gf.check(fs); err != nil {
		return o, gf, err
	}
	switch *proto {
	case "both":
		o.protos = []string{protoTCP, protoWS}
	default:
		if err := checkProto(*proto); err != nil {
			return o, gf, fmt.Errorf("%w (or both)", err)
		}
		o.protos = []string{*proto}
	}
	if o.members < 2 || o.messages <= 0 || o.rate <= 0 || o.joinConc <= 0 || o.size < 0 || o.timeout <= 0 || o.setupTimeout <= 0 || o.drain <= 0 || o.heartbeat < 0 {
		return o, gf, fmt.Errorf("%w: -members must be at least 2; -messages, -rate, -join-conc, -timeout, -setup-timeout and -drain positive; -size and -heartbeat not negative", errUsage)
	}
	if o.group == "" || strings.ContainsAny(o.group, "\"\\") {
		return o, gf, fmt.Errorf("%w: -group %q: want a non-empty id without quotes or backslashes", errUsage, o.group)
	}
	if o.noticeMax < -1 {
		return o, gf, fmt.Errorf("%w: -notice-max %d: want -1 (leave the key out) or a size >= 0", errUsage, o.noticeMax)
	}
	if o.noticeMax >= 0 {
		if gf.config != "" {
			return o, gf, fmt.Errorf("%w: -notice-max writes the bench's own config: use it without -config", errUsage)
		}
		gf.extra = fmt.Sprintf("groups: {notice_max_members: %d}\n", o.noticeMax)
	}
	if o.srcs, err = parseSources(*src); err != nil {
		return o, gf, err
	}
	debug.SetGCPercent(*gogc)
	return o, gf, nil
}

// noticeMaxRefused explains a gateway that did not start because it does not know the
// groups section that -notice-max wrote (unknown config keys are errors).
func noticeMaxRefused(noticeMax int, err error) error {
	if noticeMax < 0 || !strings.Contains(err.Error(), "field groups not found") &&
		!strings.Contains(err.Error(), "field notice_max_members not found") {
		return err
	}
	return fmt.Errorf("-notice-max: this gateway binary does not know the config key groups.notice_max_members "+
		"(build one that has it, or leave -notice-max out): %w", err)
}

// fanoutRun is the shared state of one fanout run.
type fanoutRun struct {
	*runErr
	o        fanoutOptions
	proto    string
	gw       *gateway
	conns    []net.Conn
	epoch    time.Time // send times are monotonic nanoseconds since epoch
	expected int64     // deliveries: messages * (members-1)
	hist     histogram
	sinks    []*memberSink
	readers  sync.WaitGroup
	closing  atomic.Bool
	stop     chan struct{} // closed by close: stops the heartbeats
	beats    sync.WaitGroup

	joinSlots       chan struct{} // a token per join sent and not yet answered
	joined          atomic.Int64  // join answers (10011)
	joinedAt        atomic.Int64  // r.now() of the last join answer
	noticesAtJoined atomic.Int64  // notices counted when the last join answer arrived
	allJoined       chan struct{}
	notices, other  atomic.Int64
	acks, delivered atomic.Int64
	allDelivered    chan struct{}
	deliveredOnce   sync.Once
}

// errNotDone is waitFor's timeout.
var errNotDone = errors.New("not done in time")

func (r *fanoutRun) now() int64 { return int64(time.Since(r.epoch)) }

func memberName(i int) string { return "m" + strconv.Itoa(i) }

// fanout runs the benchmark over one protocol against gw: log in, join, let the notices
// settle, send and measure, report.
func fanout(ctx context.Context, gw *gateway, proto string, o fanoutOptions, stdout, stderr io.Writer) (*fanoutResult, error) {
	printHeader(stdout, gw, gw.addr)
	fmt.Fprintf(stdout, "fanout: proto=%s members=%d group=%s messages=%d rate=%d/s size=%dB join-conc=%d sources=%s\n",
		proto, o.members, o.group, o.messages, o.rate, o.size, o.joinConc, describeSources(o.srcs))
	res := &fanoutResult{Proto: proto, Members: o.members, Expected: int64(o.messages) * int64(o.members-1)}

	d := newDialer(gw.addr, proto, o.srcs, o.timeout)
	start := time.Now()
	conns, rests, err := loginAll(ctx, d, o.members, o.joinConc, memberName, nil)
	if err != nil {
		return nil, withGateway(gw, fmt.Errorf("log in members: %w", err))
	}
	res.Login = time.Since(start)
	fmt.Fprintf(stdout, "connected: %d members logged in in %s (%.0f logins/s)\n",
		o.members, res.Login.Round(time.Millisecond), float64(o.members)/res.Login.Seconds())

	r := &fanoutRun{runErr: newRunErr(), o: o, proto: proto, gw: gw, conns: conns, epoch: time.Now(),
		expected: res.Expected, joinSlots: make(chan struct{}, o.joinConc),
		allJoined: make(chan struct{}), allDelivered: make(chan struct{}), stop: make(chan struct{})}
	defer r.close()
	r.start(rests)
	r.heartbeats()

	if err := r.join(ctx, res, stdout, stderr); err != nil {
		return nil, err
	}
	runtime.GC() // the bench's setup garbage, not during the window
	if err := r.send(ctx, res, stderr); err != nil {
		return nil, err
	}
	r.report(stdout, res)
	return res, r.verdict(res)
}

// start starts a reader per member connection.
func (r *fanoutRun) start(rests [][]byte) {
	r.sinks = make([]*memberSink, len(r.conns))
	for i, c := range r.conns {
		s := &memberSink{r: r}
		r.sinks[i] = s
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			err := readLoop(c, r.proto, rests[i], s)
			if !r.closing.Load() {
				r.fail(fmt.Errorf("member %s: connection lost: %w", memberName(i), err))
			}
		}()
	}
}

// close stops the heartbeats, closes every connection and waits for the readers.
func (r *fanoutRun) close() {
	r.closing.Store(true)
	close(r.stop)
	closeAll(r.conns)
	r.beats.Wait()
	r.readers.Wait()
}

// heartbeats has every connection send cmd 13 once per -heartbeat until the run closes:
// every 100 ms the next share of the connections, round robin, so that they do not all
// come at once.
func (r *fanoutRun) heartbeats() {
	if r.o.heartbeat <= 0 {
		return
	}
	const tick = 100 * time.Millisecond
	frame := appendFrame(nil, r.proto, packet.CmdHeartbeatReq, []byte(`{"cmd":13,"hbbyte":1}`))
	per := int((int64(len(r.conns))*int64(tick) + int64(r.o.heartbeat) - 1) / int64(r.o.heartbeat)) // rounded up
	r.beats.Add(1)
	go func() {
		defer r.beats.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		next := 0
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
			for range min(per, len(r.conns)) {
				if _, err := r.conns[next].Write(frame); err != nil {
					if !r.closing.Load() {
						r.fail(fmt.Errorf("member %s: send heartbeat: %w", memberName(next), err))
					}
					return
				}
				next = (next + 1) % len(r.conns)
			}
		}
	}()
}

// join has every member join the group, with at most -join-conc joins unanswered, and
// measures the join setup; then it waits until the notices stop coming.
func (r *fanoutRun) join(ctx context.Context, res *fanoutResult, stdout, stderr io.Writer) error {
	frame := appendFrame(nil, r.proto, packet.CmdJoinGroupReq, []byte(`{"cmd":7,"groupId":"`+r.o.group+`"}`))
	jctx, cancel := context.WithCancel(ctx)
	defer cancel() // releases writers waiting for a slot when the setup fails
	begin := r.now()
	var next atomic.Int64
	var writers sync.WaitGroup
	for range min(r.o.joinConc, r.o.members) {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(r.conns) {
					return
				}
				select {
				case r.joinSlots <- struct{}{}:
				case <-jctx.Done():
					return
				}
				if _, err := r.conns[i].Write(frame); err != nil {
					r.fail(fmt.Errorf("member %s: send join: %w", memberName(i), err))
					return
				}
			}
		}()
	}
	progress := func(el time.Duration) {
		fmt.Fprintf(stderr, "  join %s: %d/%d answered, %d notices received\n",
			el.Round(time.Second), r.joined.Load(), r.o.members, r.notices.Load())
	}
	if err := r.waitFor(ctx, r.allJoined, r.o.setupTimeout, progress); err != nil {
		return fmt.Errorf("join setup (%d/%d answered): %w", r.joined.Load(), r.o.members, err)
	}
	writers.Wait() // every join was answered, so every writer is past its last write
	res.JoinSetup = time.Duration(r.joinedAt.Load() - begin)
	res.NoticesSetup = r.noticesAtJoined.Load()

	// Let the notices still queued arrive, so that none is sent during the window: they
	// have stopped when none came for a second.
	last, quietSince := r.notices.Load(), r.epoch.Add(time.Duration(r.joinedAt.Load()))
	deadline := time.Now().Add(r.o.setupTimeout)
	for time.Since(quietSince) < time.Second {
		if time.Now().After(deadline) {
			return fmt.Errorf("notices still coming %s after the last join answer", r.o.setupTimeout)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
		if err := r.check(ctx, r.gw); err != nil {
			return err
		}
		if n := r.notices.Load(); n != last {
			last, quietSince = n, time.Now()
		}
	}
	res.NoticesTotal = last
	res.NoticesQuiet = max(0, time.Duration(int64(quietSince.Sub(r.epoch))-r.joinedAt.Load()))
	lo, hi := noticeBounds(r.o.members)
	fmt.Fprintf(stdout, "join setup: %d joins answered in %s (%.0f joins/s); cmd 9 notices: %d received during it, %d in all, the last %s after the last answer (unsuppressed: %d to %d)\n",
		r.o.members, fmtDur(res.JoinSetup), float64(r.o.members)/res.JoinSetup.Seconds(),
		res.NoticesSetup, res.NoticesTotal, fmtDur(res.NoticesQuiet), lo, hi)
	return nil
}

// noticeBounds is how many join notices n members receive when none is suppressed: a join
// is announced to the members in the group when the gateway sends the notice, from
// n(n-1)/2 when each join is done before the next one to n(n-1) when all overlap.
func noticeBounds(n int) (lo, hi int64) {
	all := int64(n) * int64(n-1)
	return all / 2, all
}

// waitFor waits until done is closed, printing progress every second; it fails when the
// run fails, the gateway dies, ctx ends or limit passes.
func (r *fanoutRun) waitFor(ctx context.Context, done <-chan struct{}, limit time.Duration, progress func(time.Duration)) error {
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	timeout := time.After(limit)
	for {
		select {
		case <-done:
			return nil
		case <-r.failed:
			return r.check(ctx, r.gw)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return fmt.Errorf("%w: %s", errNotDone, limit)
		case <-t.C:
			if err := r.check(ctx, r.gw); err != nil {
				return err
			}
			progress(time.Since(start))
		}
	}
}

// send has member 0 send the group chats at -rate, paced, and measures the window from the
// first send until every delivery arrived (or -drain after the last send).
func (r *fanoutRun) send(ctx context.Context, res *fanoutResult, stderr io.Writer) error {
	o := r.o
	s0 := cpuSnapshot(r.gw)
	sendErr := make(chan error, 1)
	go func() {
		var body, buf []byte
		interval := time.Second / time.Duration(o.rate)
		for i := range o.messages {
			if d := time.Until(s0.t.Add(time.Duration(i) * interval)); d > 0 {
				select {
				case <-time.After(d):
				case <-r.failed:
					sendErr <- nil // waitFor reports the failure
					return
				case <-ctx.Done():
					sendErr <- ctx.Err()
					return
				}
			}
			body = append(append(body[:0], `{"cmd":11,"chatType":1,"msgType":0,"groupId":"`...), o.group...)
			body = appendContent(append(body, `","content":"`...), r.now(), int64(i+1), o.size)
			buf = appendFrame(buf[:0], r.proto, packet.CmdChatReq, body)
			if _, err := r.conns[0].Write(buf); err != nil {
				sendErr <- fmt.Errorf("send group chat %d: %w", i+1, err)
				return
			}
			res.Sent++
		}
		sendErr <- nil
	}()
	progress := func(el time.Duration) {
		fmt.Fprintf(stderr, "  send %s: %d/%d deliveries, %d acks\n", el.Round(time.Second), r.delivered.Load(), r.expected, r.acks.Load())
	}
	timeout := time.Duration(o.messages)*time.Second/time.Duration(o.rate) + o.drain
	err := r.waitFor(ctx, r.allDelivered, timeout, progress)
	s1 := cpuSnapshot(r.gw)
	if serr := <-sendErr; serr != nil {
		return serr
	}
	if err != nil && (!errors.Is(err, errNotDone) || r.delivered.Load() == 0) {
		return err
	}
	// A shortfall after the timeout is reported and judged by verdict. The last ack may
	// come after the last delivery: wait for it outside the window.
	res.Window = s1.t.Sub(s0.t)
	for wait := time.Now().Add(o.drain); r.acks.Load() < res.Sent && time.Now().Before(wait); {
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
		if err := r.check(ctx, r.gw); err != nil {
			return err
		}
	}
	res.Delivered, res.Acks = r.delivered.Load(), r.acks.Load()
	for _, s := range r.sinks[1:] {
		if s.got.Load() < res.Sent {
			res.Short++
		}
	}
	res.Samples, res.P50, res.P99, res.Max = r.hist.Count(), r.hist.Quantile(0.50), r.hist.Quantile(0.99), r.hist.Max()
	if !s0.serverOK || !s1.serverOK {
		return errors.New("could not read the gateway's CPU time")
	}
	res.ServerCPU = s1.server - s0.server
	if res.Delivered > 0 {
		res.PerDelivery = res.ServerCPU / time.Duration(res.Delivered)
	}
	res.BenchCPU = (s1.bench - s0.bench).Seconds() / res.Window.Seconds()
	res.MachineCPU = machineCores(s0, s1)
	return nil
}

// report prints the run's summary line and its CPU split.
func (r *fanoutRun) report(stdout io.Writer, res *fanoutResult) {
	el := res.Window.Seconds()
	fmt.Fprintf(stdout, "fanout proto=%s members=%d join_setup=%.2fs notices_setup=%d notices_total=%d deliveries=%d/%d server_cpu_per_delivery=%.2fus p50=%s p99=%s max=%s bench_cpu=%.0f%% machine_busy=%.0f%%\n",
		res.Proto, res.Members, res.JoinSetup.Seconds(), res.NoticesSetup, res.NoticesTotal, res.Delivered, res.Expected,
		us(res.PerDelivery), fmtDur(res.P50), fmtDur(res.P99), fmtDur(res.Max), 100*res.BenchCPU, 100*res.MachineCPU)
	server := res.ServerCPU.Seconds() / el
	fmt.Fprintf(stdout, "send window %s: %d chats sent, %d acked; cpu of %d%% (%d cores): machine busy %.0f%% = gateway %.0f%% (%s, plugin processes included) + bench %.0f%% + other processes %.0f%%\n",
		fmtDur(res.Window), res.Sent, res.Acks, 100*runtime.NumCPU(), runtime.NumCPU(), 100*res.MachineCPU,
		100*server, fmtDur(res.ServerCPU), 100*res.BenchCPU, 100*max(0, res.MachineCPU-server-res.BenchCPU))
	if n := r.other.Load(); n > 0 {
		fmt.Fprintf(stdout, "note: members got %d packets that were neither chats, join answers, notices nor acks\n", n)
	}
}

// verdict fails a run whose numbers cannot be trusted: chats refused or not delivered to
// every member, or delivered twice.
func (r *fanoutRun) verdict(res *fanoutResult) error {
	switch {
	case res.Acks != res.Sent:
		return fmt.Errorf("%d of %d group chats acknowledged (cmd 12 code 10000)", res.Acks, res.Sent)
	case res.Delivered < res.Expected:
		return withGateway(r.gw, fmt.Errorf("%d of %d deliveries within %s after the last send; %d members short",
			res.Delivered, res.Expected, r.o.drain, res.Short))
	case res.Delivered > res.Expected:
		return fmt.Errorf("%d deliveries, %d expected: some chats arrived twice", res.Delivered, res.Expected)
	}
	return nil
}

// memberSink reads one member's connection: it counts the join answer, notices, chats
// (recording their latency) and, for the sender, the chat acks; heartbeat answers are
// dropped. Counters are batched until flush.
type memberSink struct {
	r                    *fanoutRun
	got                  atomic.Int64 // chats delivered to this member
	chats, notices, acks int64        // since the last flush
	now                  int64        // when the bytes at hand were read; 0 until needed
}

var _ sink = (*memberSink)(nil)

func (s *memberSink) packet(cmd packet.Cmd, body []byte) {
	r := s.r
	switch cmd {
	case packet.CmdChatReq:
		s.chats++
		if t, ok := sentTime(body); ok {
			if s.now == 0 {
				s.now = r.now()
			}
			r.hist.Record(time.Duration(s.now - t))
		}
	case packet.CmdJoinGroupNotify:
		s.notices++
	case packet.CmdJoinGroupResp:
		if code, _ := jsonInt(body, "code"); packet.Status(code) != packet.StatusJoinGroupOK {
			r.fail(fmt.Errorf("the gateway refused a join: %s", body))
			return
		}
		select {
		case <-r.joinSlots:
		default:
		}
		if r.joined.Add(1) == int64(len(r.conns)) {
			r.joinedAt.Store(r.now())
			s.flushNotices()
			r.noticesAtJoined.Store(r.notices.Load())
			close(r.allJoined)
		}
	case packet.CmdHeartbeatReq: // the answer to the bench's heartbeat
	case packet.CmdChatResp:
		if code, _ := jsonInt(body, "code"); packet.Status(code) != packet.StatusOK {
			r.fail(fmt.Errorf("the gateway refused a group chat: %s", body))
			return
		}
		s.acks++
	default:
		r.other.Add(1)
	}
}

func (s *memberSink) flushNotices() {
	if s.notices > 0 {
		s.r.notices.Add(s.notices)
		s.notices = 0
	}
}

func (s *memberSink) flush() {
	r := s.r
	s.now = 0
	s.flushNotices()
	if s.acks > 0 {
		r.acks.Add(s.acks)
		s.acks = 0
	}
	if s.chats > 0 {
		s.got.Add(s.chats)
		if r.delivered.Add(s.chats) >= r.expected {
			r.deliveredOnce.Do(func() { close(r.allDelivered) })
		}
		s.chats = 0
	}
}
