package codec

import (
	"time"
)

// Plugin is a codec plugin: one wire protocol. Serve runs it.
type Plugin interface {
	// Init is called once, at the handshake, before any connection. It receives what
	// the host's configuration says about the plugin and returns how to recognise the
	// protocol. An error fails the plugin's start (the host logs it).
	Init(h Hello) (Info, error)
	// Open is called for each connection the host hands to the plugin; the handler it
	// returns receives that connection's events.
	Open(c Conn) ConnHandler
}

// Ticker may be implemented by a Plugin: Tick is called every Info.TickInterval on the
// goroutine that calls the ConnHandlers (keepalive checks, resends).
type Ticker interface {
	Tick(now time.Time)
}

// ConnHandler receives the events of one connection, from one goroutine, in order.
// None of its methods may block.
type ConnHandler interface {
	// Data is called with bytes the client sent. b is valid only during the call.
	Data(b []byte)
	// Packet is called with a packet the gateway sends to the client (a response, a
	// delivered chat, a notice). p.Body is valid only during the call.
	Packet(p Packet)
	// Closed is called once, last, when the connection is gone: the client left, the
	// gateway closed it, the plugin asked to, or the host went away.
	Closed(reason string)
}

// Conn is a connection as a plugin sees it. Its methods are safe for concurrent use and
// copy what they are given.
type Conn interface {
	// ID identifies the connection within this plugin process.
	ID() uint64
	// RemoteAddr is the client's address, "ip:port".
	RemoteAddr() string
	// Transport is how the client reached the gateway: the protocol name, with "+tls"
	// when TLS was terminated first (e.g. "mqtt", "mqtt+tls").
	Transport() string
	// Emit hands a decoded packet to the gateway, as if the client had sent it with
	// the t-im TCP protocol: Cmd is a t-im command, Body its JSON object.
	Emit(p Packet)
	// Write sends bytes to the client.
	Write(b []byte)
	// Close closes the connection after the bytes written so far; reason is logged by
	// the host. Closed follows.
	Close(reason string)
}

// Hello is what the host tells a plugin at the handshake.
type Hello struct {
	// Versions are the wire versions the host speaks.
	Versions []int `json:"versions"`
	// Name is the protocol name the host's configuration gives the plugin.
	Name string `json:"name"`
	// Options are the plugin's options from the host's configuration.
	Options map[string]string `json:"options,omitempty"`
	// MaxFrame is the gateway's limits.max_frame_bytes: the largest packet body it
	// accepts. Plugins should refuse larger frames of their own protocol.
	MaxFrame int `json:"maxFrame"`
	// HostVersion describes the host (for logs).
	HostVersion string `json:"hostVersion,omitempty"`
	// BatchLinger is how long the plugin's sender waits to fill a batch (the host's
	// setting for its own direction; Serve applies it).
	BatchLinger time.Duration `json:"batchLinger,omitempty"`
}

// Info is what a plugin tells the host at the handshake.
type Info struct {
	// Name is the protocol's name (e.g. "mqtt"). The host's configured name wins; a
	// different one is only logged.
	Name string `json:"name"`
	// Version is the plugin's own version, shown in the host's status.
	Version string `json:"version,omitempty"`
	// Recognizer tells the protocol from a connection's first bytes. Required for the
	// shared port; a plugin served only on ports of its own may leave it empty.
	Recognizer Recognizer `json:"recognizer"`
	// TickInterval is how often Ticker.Tick runs (default one second).
	TickInterval time.Duration `json:"tickInterval,omitempty"`
	// Goodbye is what the host writes to each of the plugin's connections before it
	// closes them because the plugin's process ended under them (a crash, a restart, a
	// reload, a stop): the protocol's own "server going away" message, so that clients
	// read a reason rather than a bare EOF. Empty for protocols that have none (MQTT
	// 3.1.1 has no server DISCONNECT): the connections are just closed. At most
	// [MaxGoodbye] bytes; a longer one fails the plugin's start.
	Goodbye []byte `json:"goodbye,omitempty"`
}

// MaxGoodbye is the largest Info.Goodbye the host accepts.
const MaxGoodbye = 4096

// helloReply is the Hello call's answer.
type helloReply struct {
	Version int  `json:"version"`
	Info    Info `json:"info"`
}
