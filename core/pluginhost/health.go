package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Pinger is a Process the Supervisor can ask whether it still answers. A Process that
// is one is pinged every Policy.PingInterval; Policy.PingMisses pings in a row left
// unanswered mark it hung: its process group is killed with SIGKILL and it is
// restarted like a crashed one.
type Pinger interface {
	// Ping returns nil when the plugin answered before ctx ended.
	Ping(ctx context.Context) error
	// Pid is the plugin's process id (0: unknown, nothing is killed).
	Pid() int
}

// Ping asks a go-plugin plugin's health service whether it answers, within ctx. (The
// go-plugin client's own Ping has no deadline: it waits forever for a stopped process.)
func Ping(ctx context.Context, pc *plugin.Client) error {
	rpc, err := pc.Client()
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	gc, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		return rpc.Ping() // net/rpc plugins: no deadline to give
	}
	if _, err := healthpb.NewHealthClient(gc.Conn).Check(ctx, &healthpb.HealthCheckRequest{Service: plugin.GRPCServiceName}); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Ping defaults.
const (
	DefaultPingInterval = time.Second
	DefaultPingMisses   = 3
)

// pingMisses is PingMisses with its default.
func (p Policy) pingMisses() int {
	if p.PingMisses <= 0 {
		return DefaultPingMisses
	}
	return p.PingMisses
}

// errHung is the reason of a process killed for not answering.
var errHung = errors.New("hung")

// watchHealth pings p every PingInterval (re-read each time: a reload may change it)
// until quit is closed or p ends, and reports on hung when PingMisses pings in a row went
// unanswered.
func (s *Supervisor) watchHealth(p Process, hung chan<- error, quit <-chan struct{}) {
	pp, ok := p.(Pinger)
	if !ok {
		return
	}
	misses := 0
	last := time.Now() // when the last ping started (the first one waits an interval)
	for {
		iv := s.Policy().PingInterval
		if iv <= 0 {
			iv, misses, last = time.Second, 0, time.Now() // pings off: look again later
		}
		// Pings start every interval; one that took its whole deadline is followed at once.
		t := time.NewTimer(max(0, iv-time.Since(last)))
		select {
		case <-quit:
			t.Stop()
			return
		case <-p.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if s.Policy().PingInterval <= 0 {
			continue
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), iv)
		err := pp.Ping(ctx)
		cancel()
		if err == nil {
			misses = 0
			continue
		}
		select {
		case <-p.Done():
			return // it ended: the supervisor sees that
		case <-quit:
			return
		default:
		}
		misses++
		s.log.Debug(s.cfg.What+" did not answer a ping", "pid", pp.Pid(), "misses", misses, "took", time.Since(last).Round(time.Millisecond), "err", err)
		if n := s.Policy().pingMisses(); misses >= n {
			select {
			case hung <- fmt.Errorf("%w: %d pings in a row unanswered within %v (last: %v)", errHung, misses, iv, err):
			case <-quit:
			}
			return
		}
	}
}
