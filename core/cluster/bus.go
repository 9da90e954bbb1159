package cluster

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/timgw/timgw/core/config"
)

// bus is the connection to NATS, and the embedded server when the node runs one.
type bus struct {
	nc  *nats.Conn
	srv *server.Server // nil: an external NATS cluster
}

// connect connects to the configured NATS cluster, or starts the embedded server and
// connects to it in process.
func connect(c config.Cluster, log *slog.Logger) (*bus, error) {
	b := &bus{}
	opts := []nats.Option{
		nats.Name("timgw " + c.NodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(c.NATS.ConnectTimeout),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("cluster: bus disconnected; delivering locally only until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("cluster: bus reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("cluster: bus error", "subject", subj, "err", err)
		}),
	}
	url := strings.Join(c.NATS.URLs, ",")
	if len(c.NATS.URLs) == 0 {
		srv, err := embedded(c)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("cluster: connect to NATS %s: %w", b.describe(c), err)
	}
	b.nc = nc
	return b, nil
}

func (b *bus) describe(c config.Cluster) string {
	if b.srv != nil {
		return "(embedded, routes on " + c.NATS.Embedded.ClusterListen + ")"
	}
	return strings.Join(c.NATS.URLs, ",")
}

// embedded starts a nats-server in this process, clustered with the configured routes.
func embedded(c config.Cluster) (*server.Server, error) {
	e := c.NATS.Embedded
	host, port, err := splitHostPort(e.ClusterListen)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats.embedded.cluster_listen: %w", err)
	}
	o := &server.Options{
		// Unique per run: nats-server refuses a route from a server with a name it has,
		// and a second node with a live node's id must reach it to be told so.
		ServerName: "timgw-" + c.NodeID + "-" + rand.Text()[:10],
		Cluster:    server.ClusterOpts{Name: "timgw", Host: host, Port: port},
		Routes:     server.RoutesFromStr(routeURLs(e.Routes)),
		NoSigs:     true,
		NoLog:      true,
		// A loopback client port on a random port even without listen: with
		// DontListen, nats-server 2.15 never starts routing (StartRouting waits for the
		// client accept loop) and Shutdown then hangs.
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
	}
	if e.Listen != "" {
		if o.Host, o.Port, err = splitHostPort(e.Listen); err != nil {
			return nil, fmt.Errorf("cluster: nats.embedded.listen: %w", err)
		}
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("cluster: embedded NATS server did not start (is %s free?)", e.ClusterListen)
	}
	// Give the routes to live peers a moment to form, so that what the node asks
	// first (is its id free? who is online?) reaches them. The first node of a cluster
	// waits the whole moment: its peers are not there yet.
	if peers(e) > 0 {
		deadline := time.Now().Add(routeWait)
		for srv.NumRoutes() == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return srv, nil
}

// routeWait bounds how long a starting node waits for its first route.
const routeWait = 2 * time.Second

// peers counts the routes that are not the node's own cluster address.
func peers(e config.EmbeddedNATS) int {
	n := 0
	for _, r := range e.Routes {
		if i := strings.Index(r, "://"); i >= 0 {
			r = r[i+3:]
		}
		if r != e.ClusterListen {
			n++
		}
	}
	return n
}

// routeURLs turns host:port peers into the route URLs nats-server takes.
func routeURLs(routes []string) string {
	out := make([]string, 0, len(routes))
	for _, r := range routes {
		if !strings.Contains(r, "://") {
			r = "nats-route://" + r
		}
		out = append(out, r)
	}
	return strings.Join(out, ",")
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return h, n, nil
}

// close drains the connection and stops the embedded server.
func (b *bus) close() {
	if b.nc != nil {
		_ = b.nc.Drain()
		deadline := time.Now().Add(2 * time.Second)
		for !b.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// routes counts the embedded server's routes (-1: external NATS).
func (b *bus) routes() int {
	if b.srv == nil {
		return -1
	}
	return b.srv.NumRoutes()
}
