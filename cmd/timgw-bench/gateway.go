package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// gatewayModule is the package built when no -bin is given.
const gatewayModule = "github.com/timgw/timgw/cmd/timgw"

// gatewayFlags are the flags shared by the subcommands that start a gateway.
type gatewayFlags struct {
	bin     string
	config  string
	storage string
	hooks   string
	logFile string
	extra   string // more config a subcommand writes after -storage's and -hooks' (YAML)

	hooksSet bool // -hooks was given explicitly
}

// register adds the gateway flags to fs; hooks is the subcommand's default for -hooks.
func (f *gatewayFlags) register(fs *flag.FlagSet, hooks string) {
	fs.StringVar(&f.bin, "bin", "", "timgw binary to start (default: build ./cmd/timgw of the current module into a temporary directory)")
	fs.StringVar(&f.config, "config", "", "config file passed to the gateway as -config (then -storage and -hooks do not apply)")
	fs.StringVar(&f.storage, "storage", "", "storage the bench's config sets: none, bolt, bolt-nosync; empty: the gateway's default")
	fs.StringVar(&f.hooks, "hooks", hooks, "hook scripts in the bench's config: default (as shipped), nolimit (shipped moderation without its rate and flood limits), off")
	fs.StringVar(&f.logFile, "gwlog", "", "write the gateway's log to this file")
}

// hookConfigs are the hooks sections -hooks writes. nolimit restates the shipped
// moderation vars (conf/timgw.yaml) with the per-user rate and flood limits off: a load
// generator sends far more than 20 chats per 10 s per user.
var hookConfigs = map[string]string{
	"default": "",
	"off":     "hooks:\n  enabled: false\n",
	"nolimit": `hooks:
  vars:
    moderation:
      action: mask
      words: [badword, spamword, scamlink]
      whole_words: true
      rate_limit: 0
      flood_max: 0
`,
}

// storageConfigs are the storage sections -storage writes.
var storageConfigs = map[string]string{
	"":            "",
	"none":        "storage:\n  plugin: none\n",
	"bolt":        "storage:\n  plugin: bolt\n",
	"bolt-nosync": "storage:\n  plugin: bolt\n  nosync: true\n",
}

// check validates the flags after parsing fs.
func (f *gatewayFlags) check(fs *flag.FlagSet) error {
	storageSet := false
	fs.Visit(func(fl *flag.Flag) {
		f.hooksSet = f.hooksSet || fl.Name == "hooks"
		storageSet = storageSet || fl.Name == "storage"
	})
	if _, ok := storageConfigs[f.storage]; !ok {
		return fmt.Errorf("%w: -storage %q: want none, bolt or bolt-nosync", errUsage, f.storage)
	}
	if _, ok := hookConfigs[f.hooks]; !ok {
		return fmt.Errorf("%w: -hooks %q: want default, nolimit or off", errUsage, f.hooks)
	}
	if f.config != "" && (storageSet || f.hooksSet) {
		return fmt.Errorf("%w: -storage and -hooks write the bench's own config: use them without -config", errUsage)
	}
	return nil
}

// configText is the config file the bench writes for the gateway, or "" for none.
func (f *gatewayFlags) configText() string {
	if f.config != "" {
		return ""
	}
	return storageConfigs[f.storage] + hookConfigs[f.hooks] + f.extra
}

// gateway is a timgw subprocess.
type gateway struct {
	cmd          *exec.Cmd
	dir          string // the gateway's private working directory (its ./data and the like)
	pid          int
	addr         string // host:port of the shared port, from the "timgw ready" line
	configSource string // from the "starting timgw" line
	storage      string // what the gateway said about its storage before it was ready
	written      string // the config the bench wrote for it, if any
	version      string

	tail   *tailLog
	exited chan struct{} // closed when the process is gone
	err    error         // the process's exit status, set before exited is closed
}

// buildGateway compiles the gateway of the current module into dir.
func buildGateway(ctx context.Context, dir string, log io.Writer) (string, error) {
	bin := filepath.Join(dir, "timgw")
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=auto", "-o", bin, gatewayModule)
	cmd.Stdout, cmd.Stderr = log, log
	fmt.Fprintf(log, "building the gateway: %s\n", shellJoin(cmd.Args))
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the gateway (run from inside the timgw module, or pass -bin): %w", err)
	}
	return bin, nil
}

// resolveBin returns the gateway binary to run, building one into a temporary directory
// (removed by the returned cleanup) when f.bin is empty.
func resolveBin(ctx context.Context, f gatewayFlags, log io.Writer) (string, func(), error) {
	if f.bin != "" {
		p, err := exec.LookPath(f.bin)
		if err != nil {
			return "", nil, fmt.Errorf("-bin %s: %w", f.bin, err)
		}
		return p, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "timgw-bench-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bin, err := buildGateway(ctx, dir, log)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// startGateway runs bin on a free loopback port, in a private temporary working directory
// (so that what it writes relative to it, like the bolt store's ./data, neither lands in
// the caller's tree nor collides with another gateway), and waits until it logs that it
// is ready. Its stderr is drained for the life of the process: the last lines are kept
// for error messages, and everything is copied to f.logFile when set.
func startGateway(ctx context.Context, bin string, f gatewayFlags) (gw *gateway, err error) {
	dir, err := os.MkdirTemp("", "timgw-bench-gw-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	args := []string{"-listen", "127.0.0.1:0"}
	switch {
	case f.config != "":
		cfg, err := filepath.Abs(f.config)
		if err != nil {
			return nil, err
		}
		args = append(args, "-config", cfg)
	case f.configText() != "":
		cfg := filepath.Join(dir, "bench.yaml")
		if err := os.WriteFile(cfg, []byte(f.configText()), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-config", cfg)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// The gateway dies with the bench, whatever kills the bench.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	var logw io.Writer = io.Discard
	var logf *os.File
	if f.logFile != "" {
		if logf, err = os.Create(f.logFile); err != nil {
			return nil, fmt.Errorf("-gwlog: %w", err)
		}
		logw = logf
	}
	g := &gateway{cmd: cmd, dir: dir, written: f.configText(), tail: &tailLog{max: 40}, exited: make(chan struct{}), version: describeBinary(bin)}
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start gateway %s: %w", bin, err)
	}
	g.pid = cmd.Process.Pid

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.tail.add(line)
			fmt.Fprintln(logw, line)
			if strings.Contains(line, "starting timgw") {
				g.tail.setConfig(logField(line, "config"))
			}
			if msg := logField(line, "msg"); strings.HasPrefix(msg, "storage") {
				if p := logField(line, "plugin"); p != "" {
					msg += " (plugin " + p + ")"
				}
				g.tail.setStorage(msg)
			}
			if strings.Contains(line, "timgw ready") {
				select {
				case ready <- logField(line, "addr"):
				default:
				}
			}
		}
		_, _ = io.Copy(logw, stderr)
		g.err = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(g.exited)
	}()

	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case addr := <-ready:
		if addr == "" {
			g.stop()
			return nil, fmt.Errorf("gateway logged ready without an address:\n%s", g.tail)
		}
		g.addr = addr
		g.configSource = g.tail.config()
		g.tail.mu.Lock()
		g.storage = g.tail.storage
		g.tail.mu.Unlock()
		return g, nil
	case <-g.exited:
		return nil, fmt.Errorf("gateway exited before it was ready (%v); its last log lines:\n%s", g.err, g.tail)
	case <-timer.C:
		g.stop()
		return nil, fmt.Errorf("gateway not ready after 15s; its last log lines:\n%s", g.tail)
	case <-ctx.Done():
		g.stop()
		return nil, ctx.Err()
	}
}

// alive reports an error when the gateway has exited.
func (g *gateway) alive() error {
	select {
	case <-g.exited:
		return fmt.Errorf("gateway exited (%v); its last log lines:\n%s", g.err, g.tail)
	default:
		return nil
	}
}

// stop sends SIGTERM, waits up to 10 s for the gateway to exit, then kills it, and removes
// its working directory. It returns an error when the gateway had to be killed.
func (g *gateway) stop() error {
	defer os.RemoveAll(g.dir)
	select {
	case <-g.exited:
		return nil
	default:
	}
	// A second SIGTERM ends the gateway's drain period at once (shutdown.drain): a bench
	// has no load balancer to drain from.
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
		return nil
	case <-time.After(100 * time.Millisecond):
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-g.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
	return errors.New("gateway did not stop within 10s of SIGTERM and was killed")
}

// rss returns the gateway process's resident set size (VmRSS) and peak (VmHWM), in bytes.
func (g *gateway) rss() (rss, hwm int64, err error) {
	return procRSS(g.pid)
}

// pluginRSS returns the summed VmRSS of the gateway's descendants (plugin processes, such
// as the storage plugin) and their command lines.
func (g *gateway) pluginRSS() (rss int64, names []string) {
	for _, pid := range descendants(g.pid) {
		if r, _, err := procRSS(pid); err == nil {
			rss += r
			names = append(names, procName(pid))
		}
	}
	return rss, names
}

// procName is a process's command line without the program's directory.
func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return strconv.Itoa(pid)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	args[0] = filepath.Base(args[0])
	return strings.Join(args, " ")
}

// pluginCPU returns the summed CPU time of the gateway's descendants.
func (g *gateway) pluginCPU() time.Duration {
	var t time.Duration
	for _, pid := range descendants(g.pid) {
		if c, err := procCPU(pid); err == nil {
			t += c
		}
	}
	return t
}

// descendants lists the processes below pid (children, their children, ...).
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

func procRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", k, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every Linux port
// Go supports.
const clockTicks = 100

// cpu returns the CPU time (user + system, all threads) the gateway process has used.
func (g *gateway) cpu() (time.Duration, error) {
	return procCPU(g.pid)
}

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: skip past it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/pid/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/pid/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// runqWait returns how long the live threads of pid have waited on a run queue for a CPU
// (the second field of /proc/<pid>/task/<tid>/schedstat, summed), 0 when unknown. A
// thread ready to run but waiting for a core: on a busy machine, the part of a latency
// that is the machine's.
func runqWait(pid int) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var sum int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			sum += v
		}
	}
	return time.Duration(sum)
}

// runqWait returns how long the gateway's threads and its plugin processes' threads have
// waited for a CPU (see runqWait).
func (g *gateway) runqWait() time.Duration {
	t := runqWait(g.pid)
	for _, pid := range descendants(g.pid) {
		t += runqWait(pid)
	}
	return t
}

// selfCPU returns the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// describeBinary names a gateway binary: path, Go version, module version, VCS revision
// when the build recorded one, and a hash of the file so that runs can be matched to a
// build even without VCS stamping.
func describeBinary(bin string) string {
	var parts []string
	if b, err := os.ReadFile(bin); err == nil {
		sum := sha256.Sum256(b)
		parts = append(parts, "sha256:"+hex.EncodeToString(sum[:6]))
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Sprintf("%s (%s; no Go build info: %v)", bin, strings.Join(parts, ", "), err)
	}
	parts = append(parts, info.GoVersion, info.Main.Path+"@"+info.Main.Version)
	rev, modified := "", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified == "true" {
			rev += "+dirty"
		}
		parts = append(parts, "commit "+rev)
	} else {
		c := "commit not stamped in the binary (built with -buildvcs=false)"
		if head := workTreeRevision(); head != "" {
			c += "; current work tree: " + head
		}
		parts = append(parts, c)
	}
	return fmt.Sprintf("%s (%s)", bin, strings.Join(parts, ", "))
}

// workTreeRevision describes the git work tree the bench runs in, or "".
func workTreeRevision() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// logField extracts a field from a log line of slog's text (key=value, key="quoted") or
// JSON ("key":"value") handler.
func logField(line, key string) string {
	if i := strings.Index(line, `"`+key+`":"`); i >= 0 {
		rest := line[i+len(key)+4:]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
	}
	for _, sep := range []string{" " + key + "=", "\t" + key + "="} {
		i := strings.Index(line, sep)
		if i < 0 {
			continue
		}
		rest := line[i+len(sep):]
		if strings.HasPrefix(rest, `"`) {
			if s, err := strconv.QuotedPrefix(rest); err == nil {
				if u, err := strconv.Unquote(s); err == nil {
					return u
				}
			}
		}
		if j := strings.IndexAny(rest, " \t"); j >= 0 {
			rest = rest[:j]
		}
		return rest
	}
	return ""
}

// tailLog keeps the last lines of the gateway's log.
type tailLog struct {
	mu      sync.Mutex
	max     int
	lines   []string
	cfg     string
	storage string
}

func (t *tailLog) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.max-1]
	}
	t.lines = append(t.lines, line)
}

func (t *tailLog) setConfig(s string) {
	t.mu.Lock()
	t.cfg = s
	t.mu.Unlock()
}

func (t *tailLog) setStorage(s string) {
	t.mu.Lock()
	t.storage = s
	t.mu.Unlock()
}

func (t *tailLog) config() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cfg == "" {
		return "unknown"
	}
	return strconv.Quote(t.cfg)
}

func (t *tailLog) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return "  (no output)"
	}
	return "  " + strings.Join(t.lines, "\n  ")
}

// machineCPU returns the busy and total CPU time of the whole machine (all cores) from
// /proc/stat, so that a run can tell how much of the machine other processes took.
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("unexpected /proc/stat")
	}
	var idle int64
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i >= 7 { // guest and guest_nice are already counted in user and nice
			break
		}
		total += time.Duration(v) * time.Second / clockTicks
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - time.Duration(idle)*time.Second/clockTicks, total, nil
}

// loadAvg returns the first three fields of /proc/loadavg, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
