package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Cluster makes this gateway one node of several that act as one (docs/cluster.md). Off
// unless enabled: a single gateway needs none of it.
type Cluster struct {
	// Enabled turns the cluster on.
	Enabled bool `yaml:"enabled"`
	// NodeID names this node, unique in the cluster (default: the host name). Two live
	// nodes with one id are refused at start.
	NodeID string `yaml:"node_id"`
	// Lease is how long a node's presence entries outlive its last heartbeat: a node
	// killed without goodbye shows its users offline after at most this (default 3s;
	// heartbeats go every lease/3).
	Lease time.Duration `yaml:"lease"`
	// Advertise is the address clients can reach this node at, shown in admin status
	// (default: the listen address).
	Advertise string `yaml:"advertise"`
	// NATS is the bus.
	NATS NATS `yaml:"nats"`
}

// NATS says how a node reaches the bus: an existing NATS cluster (URLs), or a nats-server
// run inside every node and clustered over NATS routes (Embedded).
type NATS struct {
	// URLs of an existing NATS cluster (nats://host:4222, comma-free list).
	URLs []string `yaml:"urls"`
	// Embedded runs a nats-server in this process (when URLs is empty).
	Embedded EmbeddedNATS `yaml:"embedded"`
	// ConnectTimeout bounds the first connection (default 5s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// EmbeddedNATS configures the nats-server a node runs in its own process.
type EmbeddedNATS struct {
	// ClusterListen is host:port where the embedded server takes routes from its peers
	// (default 0.0.0.0:6222).
	ClusterListen string `yaml:"cluster_listen"`
	// Routes are the peers' cluster_listen addresses (host:port or nats-route://host:port).
	// A node may list itself; every node should list the others (a full mesh forms from
	// any connected set).
	Routes []string `yaml:"routes"`
	// Listen, when set, also serves NATS clients on host:port (for tools such as
	// `nats sub`); empty: no client port.
	Listen string `yaml:"listen"`
}

// Resolved fills the cluster's defaults.
func (c Cluster) Resolved() Cluster {
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
	}
	if c.Lease == 0 {
		c.Lease = 3 * time.Second
	}
	if c.NATS.ConnectTimeout == 0 {
		c.NATS.ConnectTimeout = 5 * time.Second
	}
	if len(c.NATS.URLs) == 0 && c.NATS.Embedded.ClusterListen == "" {
		c.NATS.Embedded.ClusterListen = "0.0.0.0:6222"
	}
	return c
}

// Validate checks the cluster section against the rest of the configuration: a cluster
// needs storage that every node shares.
func (c Cluster) Validate(s Storage) error {
	if !c.Enabled {
		return nil
	}
	r := c.Resolved()
	var errs []error
	if r.NodeID == "" || strings.ContainsAny(r.NodeID, ".*> \t") {
		errs = append(errs, fmt.Errorf("node_id: %q must be non-empty, without dots, spaces, * or > (it is part of NATS subjects)", r.NodeID))
	}
	if r.Lease < 300*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease: %v is too short (at least 300ms)", r.Lease))
	}
	if len(r.NATS.URLs) == 0 {
		if _, _, err := net.SplitHostPort(r.NATS.Embedded.ClusterListen); err != nil {
			errs = append(errs, fmt.Errorf("nats.embedded.cluster_listen: %w", err))
		}
	}
	switch s.Resolved().Plugin {
	case StorageBolt:
		errs = append(errs, errors.New("storage.plugin bolt keeps its data in one node's local file, which the other nodes cannot read: a cluster needs shared storage (storage.plugin: mongo, or an external plugin that declares itself shared)"))
	}
	return errors.Join(errs...)
}
