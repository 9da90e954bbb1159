// Command timgw-bench drives a real timgw gateway binary over loopback and prints numbers.
//
//	timgw-bench idle [flags]   server RSS per idle, logged-in connection (TCP or WebSocket)
//	timgw-bench chat [flags]   private-chat throughput and latency between pairs of users
//	timgw-bench cluster [flags] gateway CPU per chat and latency, same node vs across 2 nodes
//	timgw-bench fanout [flags]  gateway CPU per delivery of a large group chat, and the join setup time
//
// All start the gateway as a subprocess (flag -bin; without it the gateway is built from
// the current module), wait for its "timgw ready" log line, drive it over real sockets and
// stop it with SIGTERM (then SIGKILL) at the end. chat can also use a running gateway
// (-addr). Run a subcommand with -h for its flags; README.md explains the method and how
// to read the numbers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `timgw-bench drives a real timgw gateway over loopback and prints numbers.

Usage:
  timgw-bench idle [flags]   server RSS per idle logged-in connection
  timgw-bench chat [flags]   private-chat throughput and latency between user pairs
  timgw-bench cluster [flags] CPU per chat and latency within and across 2 cluster nodes
  timgw-bench fanout [flags]  CPU per delivery of a large group chat, and its join setup time

Run "timgw-bench <command> -h" for the flags of a command.
`

// run executes one subcommand and returns the process exit code: 0 on success, 1 on a
// failed run, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "idle":
		_, err = runIdle(ctx, args[1:], stdout, stderr)
	case "chat":
		_, err = runChat(ctx, args[1:], stdout, stderr)
	case "cluster":
		_, err = runCluster(ctx, args[1:], stdout, stderr)
	case "fanout":
		_, err = runFanout(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "timgw-bench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if !errors.Is(err, errFlags) {
			fmt.Fprintf(stderr, "timgw-bench: %v\n", err)
		}
		return 2
	}
	fmt.Fprintf(stderr, "timgw-bench: FAILED: %v\n", err)
	return 1
}

// errUsage marks errors in the command line.
var errUsage = errors.New("usage error")

// errFlags marks usage errors that the flag package has printed already.
var errFlags = fmt.Errorf("%w: bad flags", errUsage)

// parseFlags parses a subcommand's flags, turning flag errors into errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errFlags
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}

// raiseNoFile raises the soft open-file limit to the hard limit. Calling Setrlimit
// explicitly also makes child processes (the gateway) inherit the raised limit: Go
// restores the original soft limit for children only when the program did not set it.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("setrlimit NOFILE %d: %w", lim.Max, err)
	}
	return lim.Cur, nil
}

// commandLine renders this process's command line, shell-quoted where needed.
func commandLine() string {
	return shellJoin(append([]string{"timgw-bench"}, os.Args[1:]...))
}

func shellJoin(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || r == '=' || r == ',' ||
				r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteString(strconv.Quote(a))
	}
	return b.String()
}

// printHeader writes what identifies a run: the command, the machine and the gateway.
func printHeader(w io.Writer, gw *gateway, addr string) {
	fmt.Fprintf(w, "command: %s\n", commandLine())
	fmt.Fprintf(w, "machine: %d CPUs, %s/%s, bench %s GOMAXPROCS=%d, load average %s\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.GOMAXPROCS(0), loadAvg())
	if gw == nil {
		fmt.Fprintf(w, "gateway: external at %s (version unknown; server CPU and RSS not measured)\n", addr)
		return
	}
	fmt.Fprintf(w, "gateway: %s\n", gw.version)
	fmt.Fprintf(w, "gateway command: %s (pid %d, in %s, config %s, listening on %s)\n",
		shellJoin(gw.cmd.Args), gw.pid, gw.dir, gw.configSource, gw.addr)
	if gw.written != "" {
		fmt.Fprintf(w, "gateway config written by the bench (everything else default):\n  %s\n",
			strings.ReplaceAll(strings.TrimSpace(gw.written), "\n", "\n  "))
	}
	if gw.storage != "" {
		fmt.Fprintf(w, "gateway storage: %s\n", gw.storage)
	}
}
