// Package codec is timgw's SDK for codec plugins: wire protocols served by a separate
// executable that timgw starts, talks to over one gRPC stream (hashicorp/go-plugin), and
// puts on its shared port next to the built-in t-im TCP, WebSocket and HTTP.
//
// # Plugin side
//
// A plugin implements [Plugin] (and, for each connection, [ConnHandler]) and calls
// [Serve] from its main function:
//
//	func main() { codec.Serve(myProtocol{}) }
//
// At the handshake the plugin returns an [Info]: its protocol name and a [Recognizer],
// a small declarative rule over a connection's first bytes that the host evaluates
// itself when it sniffs a new connection (no round trip to the plugin per connection).
// Then, for every connection the host assigns to the plugin, the plugin sees the
// client's bytes ([ConnHandler.Data]) and the gateway's packets ([ConnHandler.Packet]),
// and answers through the [Conn]: [Conn.Emit] hands a decoded t-im packet (cmd + JSON
// body) to the gateway, [Conn.Write] sends bytes to the client, [Conn.Close] ends the
// connection. Per-connection protocol state lives in the plugin.
//
// All ConnHandler calls, and Ticker.Tick, are made from one goroutine: a plugin needs
// no locks for its connection state, and must not block in them. Conn methods are safe
// from any goroutine.
//
// # Module
//
// This SDK is a Go module of its own (github.com/timgw/timgw/plugins/codec), which
// depends on go-plugin and gRPC, not on the gateway: a plugin outside timgw's tree
// requires it alone (plugins/README.md, "Building out of tree"). It carries the t-im
// vocabulary a plugin needs (tim.go): [Packet], [Cmd], [Status], the bodies [Login],
// [Chat], [JoinGroup], [GroupNotice], [Response], and [Encode] and [Decode].
//
// # Goodbye
//
// [Info.Goodbye] is the protocol's "server going away" message: the host writes it to
// each of the plugin's connections before closing them when the plugin's process ends
// (a crash, a restart), since the dead plugin cannot.
//
// # Host side
//
// [Launch] starts a plugin executable, runs the handshake and opens the stream;
// [Client] then carries the host's frames (open, data, packet, close) and hands the
// plugin's frames (packet, write, close) to a [HostHandler]. timgw's core/codecplugin
// builds on it.
//
// # Wire
//
// One bidirectional gRPC stream per plugin carries every connection. Each gRPC message
// is a batch of frames (see wire.go): kind, connection id, fields. Batches are flushed
// when the sender is idle, when a batch reaches [BatchOptions.MaxBytes], or after
// [BatchOptions.Linger]. The gRPC service is written by hand with a codec of its own
// (content subtype "timgw-codec-v1"): no protoc, no generated code. Two version checks
// guard it: go-plugin's [Handshake] (ProtocolVersion and magic cookie) and the
// [WireVersion] negotiated in the Hello call.
package codec
