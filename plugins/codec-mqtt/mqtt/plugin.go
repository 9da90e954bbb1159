package mqtt

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/timgw/timgw/plugins/codec"
)

// Version is the plugin's version, reported at the handshake.
const Version = "1.0.0"

// Payload formats of deliveries.
const (
	PayloadJSON = "json" // the chat as timgw delivers it: {"id","from","to","chatType","content",...}
	PayloadText = "text" // the chat's content only
)

// Options are the plugin's options (codecs.plugins[].options in timgw's configuration).
type Options struct {
	// Payload is the format of deliveries: "json" (default) or "text".
	Payload string
	// RetryInterval resends a QoS 1 delivery not acknowledged for this long, with DUP
	// set ("retry_interval", default 20s; 0 turns resending off).
	RetryInterval time.Duration
	// MaxInflight bounds the QoS 1 deliveries waiting for PUBACK on one connection; a
	// client that leaves more unacknowledged is disconnected ("max_inflight", default
	// 1000).
	MaxInflight int
	// MaxQueued bounds the packets a client may send between CONNECT and CONNACK
	// ("max_queued", default 100); more closes the connection.
	MaxQueued int
}

// DefaultOptions returns the options used for every option left out.
func DefaultOptions() Options {
	return Options{Payload: PayloadJSON, RetryInterval: 20 * time.Second, MaxInflight: 1000, MaxQueued: 100}
}

// ParseOptions reads options from the host's configuration.
func ParseOptions(m map[string]string) (Options, error) {
	o := DefaultOptions()
	for k, v := range m {
		var err error
		switch k {
		case "payload":
			if v != PayloadJSON && v != PayloadText {
				err = fmt.Errorf("%q is not json or text", v)
			}
			o.Payload = v
		case "retry_interval":
			o.RetryInterval, err = time.ParseDuration(v)
			if err == nil && o.RetryInterval < 0 {
				err = fmt.Errorf("negative")
			}
		case "max_inflight":
			o.MaxInflight, err = positive(v)
		case "max_queued":
			o.MaxQueued, err = positive(v)
		default:
			err = fmt.Errorf("unknown option (payload, retry_interval, max_inflight, max_queued)")
		}
		if err != nil {
			return o, fmt.Errorf("mqtt option %s: %w", k, err)
		}
	}
	return o, nil
}

func positive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n <= 0 {
		err = fmt.Errorf("%d is not > 0", n)
	}
	return n, err
}

// Recognizer is MQTT's CONNECT: type 1 with no flags, the remaining length (1 to 4
// bytes), then the protocol name "MQTT" (3.1.1 and 5) or "MQIsdp" (3.1, which is
// answered with return code 1).
var Recognizer = codec.Recognizer{Rules: []codec.Rule{
	{Name: "mqtt 3.1.1/5 CONNECT", Steps: []codec.Step{codec.Exact(0x10), codec.Varint(4), codec.Exact(0x00, 0x04), codec.Text("MQTT")}},
	{Name: "mqtt 3.1 CONNECT", Steps: []codec.Step{codec.Exact(0x10), codec.Varint(4), codec.Exact(0x00, 0x06), codec.Text("MQIsdp")}},
}}

// Plugin is the MQTT codec plugin. Its methods run on the SDK's dispatch goroutine.
type Plugin struct {
	opts     Options
	maxFrame int
	log      *slog.Logger
	sessions map[uint64]*session
	scratch  []byte // encode buffer (Conn.Write copies)
	body     []byte // chat body buffer (Conn.Emit copies)
	now      func() time.Time
}

var (
	_ codec.Plugin = (*Plugin)(nil)
	_ codec.Ticker = (*Plugin)(nil)
)

// New returns the plugin with default options (Init applies the host's).
func New() *Plugin {
	return &Plugin{opts: DefaultOptions(), maxFrame: 1 << 20, sessions: make(map[uint64]*session), now: time.Now}
}

// Init implements codec.Plugin.
func (p *Plugin) Init(h codec.Hello) (codec.Info, error) {
	opts, err := ParseOptions(h.Options)
	if err != nil {
		return codec.Info{}, err
	}
	p.opts = opts
	if h.MaxFrame > 0 {
		// An MQTT packet carries a chat body of up to max_frame_bytes plus its topic
		// and header.
		p.maxFrame = h.MaxFrame + 64<<10
	}
	p.log = slog.Default().With("protocol", "mqtt")
	// No Goodbye: MQTT 3.1.1 has no server-sent DISCONNECT; a client learns of the
	// plugin's end by the connection closing.
	return codec.Info{Name: "mqtt", Version: Version, Recognizer: Recognizer, TickInterval: time.Second}, nil
}

// Open implements codec.Plugin.
func (p *Plugin) Open(c codec.Conn) codec.ConnHandler {
	if p.log == nil {
		p.log = slog.Default().With("protocol", "mqtt")
	}
	s := &session{p: p, c: c, opened: p.now(), subs: make(map[string]byte), groups: make(map[string]bool)}
	s.lastSeen = s.opened
	p.sessions[c.ID()] = s
	return s
}

// Tick implements codec.Ticker: keepalive and QoS 1 resends.
func (p *Plugin) Tick(now time.Time) {
	for _, s := range p.sessions {
		s.tick(now)
	}
}

// Topic layout.
const (
	topicUser  = "chat/user/"
	topicInbox = "inbox/"
	topicGroup = "chat/group/"
)

// topicKind is what a topic names.
type topicKind int

const (
	topicOther   topicKind = iota
	topicPrivate           // chat/user/<id> or inbox/<id>
	topicGrp               // chat/group/<id>
)

// parseTopic splits a topic of the layout into its kind and id.
func parseTopic(t string) (topicKind, string) {
	for _, pre := range [...]string{topicUser, topicInbox} {
		if id, ok := strings.CutPrefix(t, pre); ok && id != "" {
			return topicPrivate, id
		}
	}
	if id, ok := strings.CutPrefix(t, topicGroup); ok && id != "" {
		return topicGrp, id
	}
	return topicOther, ""
}
