package hook

// Protocol names, as the gateway fills the Protocol field of requests.
const (
	ProtocolTCP  = "tcp"  // the t-im binary framing, plain or over TLS
	ProtocolWS   = "ws"   // WebSocket, plain or over TLS
	ProtocolHTTP = "http" // the HTTP API
)

// ConnectRequest describes a new connection.
type ConnectRequest struct {
	// Addr is the remote address, "ip:port".
	Addr string
	// Protocol is ProtocolTCP, ProtocolWS or ProtocolHTTP (the sniffed protocol).
	Protocol string
	// TLS is set when the connection is TLS-wrapped.
	TLS bool
}

// ConnectReply is the decision on a new connection. The zero value allows it.
type ConnectReply struct {
	// Deny refuses the connection: the gateway closes it at once, writing nothing
	// (a WebSocket upgrade or HTTP request gets 403 with Reason).
	Deny bool
	// Reason says why, for the log and the 403 body.
	Reason string
	// Script is the script that decided (empty when no script had an opinion).
	Script string
}
