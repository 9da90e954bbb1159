package cluster

import "github.com/prometheus/client_golang/prometheus"

// Collectors are the cluster's metrics, for /metrics: bus batches and items, drops,
// malformed messages, presence resyncs, nodes known and the bus state.
func (n *Node) Collectors() []prometheus.Collector {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "timgw", Subsystem: "cluster", Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	return []prometheus.Collector{
		counter("batches_published_total", "Bus messages of deliveries published to other nodes.", n.stats.published.Load),
		counter("bytes_published_total", "Bytes of delivery batches published to other nodes.", n.stats.bytes.Load),
		counter("items_published_total", "Pushes queued for other nodes (one per push and node).", n.stats.items.Load),
		counter("items_dropped_total", "Pushes for other nodes dropped (outbox full or bus refused).", n.stats.dropped.Load),
		counter("items_received_total", "Pushes received from other nodes.", n.stats.received.Load),
		counter("malformed_total", "Malformed bus messages ignored.", n.stats.malformed.Load),
		counter("presence_resyncs_total", "Presence snapshots asked of other nodes.", n.stats.resyncs.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "timgw", Subsystem: "cluster", Name: "nodes",
			Help: "Nodes this one knows alive, itself included."}, func() float64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			return float64(len(n.peers) + 1)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "timgw", Subsystem: "cluster", Name: "bus_connected",
			Help: "1 when the bus is connected."}, func() float64 {
			if n.Connected() {
				return 1
			}
			return 0
		}),
	}
}
