package session

// Transport describes how a connection reached the gateway: typed facts, so that nobody
// parses them out of a protocol name.
type Transport struct {
	// Protocol is the wire protocol without its TLS layer: "tcp", "ws", or a codec
	// plugin's protocol name ("mqtt", ...). "http" for HTTP API callers.
	Protocol string
	// TLS is set when the connection is TLS (wss, TLS+TCP, a plugin protocol over TLS).
	TLS bool
	// RemoteAddr is the peer's address ("ip:port"), or "" when unknown.
	RemoteAddr string
}
