package config

import (
	"strings"
	"testing"
	"time"
)

func TestClusterConfig(t *testing.T) {
	mongo := "storage: {plugin: mongo, mongo: {uri: 'mongodb://db:27017/'}}\n"
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, c Cluster)
	}{
		{"off by default", "", "", func(t *testing.T, c Cluster) {
			if c.Enabled {
				t.Error("cluster on by default")
			}
		}},
		{"bolt refused", "cluster: {enabled: true, node_id: a}", "shared storage", nil},
		{"mongo accepted with defaults", mongo + "cluster: {enabled: true, node_id: a}", "", func(t *testing.T, c Cluster) {
			r := c.Resolved()
			if r.Lease != 3*time.Second || r.NATS.Embedded.ClusterListen != "0.0.0.0:6222" || r.NATS.ConnectTimeout != 5*time.Second {
				t.Errorf("defaults: %+v", r)
			}
		}},
		{"external urls need no embedded listen", mongo + "cluster: {enabled: true, node_id: a, nats: {urls: ['nats://n1:4222']}}", "", func(t *testing.T, c Cluster) {
			if r := c.Resolved(); r.NATS.Embedded.ClusterListen != "" {
				t.Errorf("embedded listen set with external NATS: %q", r.NATS.Embedded.ClusterListen)
			}
		}},
		{"node id with a dot", mongo + "cluster: {enabled: true, node_id: a.b}", "node_id", nil},
		{"lease too short", mongo + "cluster: {enabled: true, node_id: a, lease: 10ms}", "lease", nil},
		{"bad cluster listen", mongo + "cluster: {enabled: true, node_id: a, nats: {embedded: {cluster_listen: nope}}}", "cluster_listen", nil},
		{"unknown key", mongo + "cluster: {enabled: true, nodeid: a}", "field nodeid not found", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c.Cluster)
			}
		})
	}
}

func TestShippedClusterConfigsParse(t *testing.T) {
	for _, n := range []string{"a", "b", "c"} {
		c, err := Load("../../conf/cluster/node-" + n + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !c.Cluster.Enabled || c.Cluster.NodeID != n || len(c.Cluster.NATS.Embedded.Routes) != 3 {
			t.Errorf("node-%s.yaml: cluster %+v", n, c.Cluster)
		}
	}
}
