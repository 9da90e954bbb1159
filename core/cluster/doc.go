// Package cluster makes several gateways act as one (docs/cluster.md). The nodes share a
// NATS bus (an existing NATS cluster, or a nats-server embedded in every node and joined
// over NATS routes) and a shared store (the mongo storage plugin); there is no consensus
// or gossip of our own.
//
// What crosses the bus:
//   - deliveries: the cluster stage of the delivery seam (Node.Wrap) hands every push
//     (chat, notice, kick) for users connected elsewhere to their nodes, batched, one bus
//     message per node and batch on the node's own subject timgw.node.<id>.deliver;
//   - presence: every node publishes sequenced changes of its users' connection counts,
//     and a heartbeat; the others keep a directory (user → nodes) whose entries belong to
//     a node's lease and epoch, so a dead node's users vanish within the lease and a
//     restarted node never brings stale entries back;
//   - group membership changes, applied to every node's registry.
package cluster
