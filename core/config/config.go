// Package config is timgw's configuration: the YAML schema of conf/timgw.yaml, its
// defaults (that file as embedded in the binary, applied key by key: defaults.go),
// environment expansion for secrets, and validation. Unknown keys are errors.
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"time"
)

// Config is the whole gateway configuration.
type Config struct {
	// Listen is the address of the shared port, where every protocol is sniffed.
	Listen string `yaml:"listen"`
	// Listeners are optional extra ports, each for one protocol only.
	Listeners []Listener `yaml:"listeners"`
	// TLS configures the certificate used for wss, https and TLS+TCP. Empty: no TLS.
	TLS TLS `yaml:"tls"`
	// Auth selects how clients prove who they are.
	Auth Auth `yaml:"auth"`
	// API configures the HTTP API.
	API API `yaml:"api"`
	// Admin configures the admin endpoints (/admin/*, /metrics).
	Admin Admin `yaml:"admin"`
	// Limits bound what one client may cost.
	Limits Limits `yaml:"limits"`
	// Runtime sizes the event loops and the worker pool.
	Runtime Runtime `yaml:"runtime"`
	// Log configures the structured log.
	Log Log `yaml:"log"`
	// Hooks configures the Lua hooks run on connections, logins and messages.
	Hooks Hooks `yaml:"hooks"`
	// Codecs are protocol plugins served on the shared port (and on ports of their own).
	Codecs Codecs `yaml:"codecs"`
	// Storage persists chats (offline delivery, history, recall).
	Storage Storage `yaml:"storage"`
	// Cluster makes this gateway one node of several (off by default).
	Cluster Cluster `yaml:"cluster"`
	// Groups configures how groups behave as they grow (join/leave notices, listings).
	Groups Groups `yaml:"groups"`
	// Shutdown configures the drain and the goodbye on SIGTERM and SIGINT.
	Shutdown Shutdown `yaml:"shutdown"`
	// Webhooks POSTs events (offline messages, presence, refusals) to HTTP endpoints.
	Webhooks Webhooks `yaml:"webhooks"`
}

// Listener is a dedicated port for one protocol.
type Listener struct {
	// Protocol is one of tcp, ws, http (plain) or tls (TLS, then sniffed).
	Protocol string `yaml:"protocol"`
	// Address is host:port.
	Address string `yaml:"address"`
}

// TLS names a certificate and key in PEM files.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

// Auth selects the authenticator.
type Auth struct {
	// Mode is "open" (any userId logs in, t-im's behaviour) or "jwt" (HS256 tokens).
	Mode string `yaml:"mode"`
	// JWT configures token verification in jwt mode.
	JWT JWT `yaml:"jwt"`
}

// JWT configures HS256 token verification.
type JWT struct {
	// Secret is the HMAC key; use ${ENV_VAR} to keep it out of the file.
	Secret string `yaml:"secret"`
	// Issuer, when set, must equal the token's iss claim.
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be among the token's aud claim.
	Audience string `yaml:"audience"`
}

// API configures the HTTP API.
type API struct {
	// Keys are accepted API keys (header X-API-Key or Authorization: Bearer).
	Keys []string `yaml:"keys"`
	// SystemUser is the sender of messages sent "as the system".
	SystemUser string `yaml:"system_user"`
}

// Admin configures the admin endpoints.
type Admin struct {
	// Keys are accepted admin keys (header X-Admin-Key or Authorization: Bearer).
	// With none, the admin endpoints refuse every request.
	Keys []string `yaml:"keys"`
}

// Limits bound what one client may cost.
type Limits struct {
	// MaxFrameBytes is the largest frame body accepted; larger is a protocol error.
	MaxFrameBytes int `yaml:"max_frame_bytes"`
	// MaxContentBytes is the largest chat content accepted (code 10026 above it).
	MaxContentBytes int `yaml:"max_content_bytes"`
	// OutboundQueueBytes bounds the bytes queued to one connection; a consumer that
	// falls further behind is disconnected.
	OutboundQueueBytes int `yaml:"outbound_queue_bytes"`
	// IdleTimeout closes connections that sent nothing for this long (0: never).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// SniffTimeout closes connections that do not send their first bytes in time.
	SniffTimeout time.Duration `yaml:"sniff_timeout"`
	// MaxConnections caps concurrent connections (0: no cap).
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP caps the concurrent connections of one client address (an
	// IPv4 address, or an IPv6 /64): t-im TCP, WebSocket, TLS and codec plugin
	// connections (0: no cap). More are closed as soon as they are accepted.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// ConnectionRatePerIP is how many new connections per second one client address may
	// open, every protocol and HTTP included (0: no limit); more are closed at once.
	ConnectionRatePerIP float64 `yaml:"connection_rate_per_ip"`
	// ConnectionBurstPerIP is how many connections one client address may open at once
	// over ConnectionRatePerIP (0: the rate rounded up, at least 1).
	ConnectionBurstPerIP int `yaml:"connection_burst_per_ip"`
	// BodyTimeout bounds reading an HTTP request body, from the end of its headers.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// FrameTimeout bounds the time from a frame's first byte to its last (t-im TCP,
	// WebSocket); a connection with a frame incomplete longer is closed (code 10037).
	FrameTimeout time.Duration `yaml:"frame_timeout"`
	// PipelinedChats is how many stored chats of one connection may be on their way to
	// the store at once (1 to 255; 1: each waits for the previous one's answer). Their
	// answers (cmd 12) come in the order the chats were sent; any other command waits
	// for them.
	PipelinedChats int `yaml:"pipelined_chats"`
}

// ConnectionBurst returns the effective ConnectionBurstPerIP.
func (l Limits) ConnectionBurst() int {
	if l.ConnectionBurstPerIP > 0 {
		return l.ConnectionBurstPerIP
	}
	return max(1, int(math.Ceil(l.ConnectionRatePerIP)))
}

// Runtime sizes the concurrency machinery.
type Runtime struct {
	// EventLoops is the number of event loops (0: one per CPU).
	EventLoops int `yaml:"event_loops"`
	// Workers is the size of the goroutine pool doing per-packet work (0: 64 per CPU).
	Workers int `yaml:"workers"`
	// IdleTrim: once traffic has stayed low (under 100 packets/s) this long, the gateway
	// returns its free memory to the operating system, once per quiet spell (0: never).
	IdleTrim time.Duration `yaml:"idle_trim"`
}

// Log configures log/slog.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${NAME} and ${NAME:-default} with environment values.
func expandEnv(b []byte) []byte {
	return envRef.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		if v, ok := os.LookupEnv(string(sub[1])); ok && v != "" {
			return []byte(v)
		}
		return sub[3]
	})
}

// Parse reads a configuration from YAML over the defaults (Defaults: the embedded
// conf/timgw.yaml), expanding ${ENV} references, and validates it. Defaults apply key by
// key: the file overrides only the keys it sets, and a list or map it sets replaces the
// default one as a whole. Errors name the offending line or key.
func Parse(data []byte) (*Config, error) {
	cfg, err := defaults()
	if err != nil {
		return nil, err
	}
	if err := decodeOver(&cfg, expandEnv(data)); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Load reads and parses a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks values that YAML types alone do not.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: must not be empty"))
	}
	if c.Runtime.IdleTrim < 0 {
		errs = append(errs, fmt.Errorf("runtime.idle_trim: %v is negative (0 turns trimming off)", c.Runtime.IdleTrim))
	}
	for i, l := range c.Listeners {
		switch l.Protocol {
		case "tcp", "ws", "http":
		case "tls":
			if !c.TLS.Enabled() {
				errs = append(errs, fmt.Errorf("listeners[%d]: protocol tls needs tls.cert and tls.key", i))
			}
		default:
			errs = append(errs, fmt.Errorf("listeners[%d].protocol: %q is not one of tcp, ws, http, tls", i, l.Protocol))
		}
		if l.Address == "" {
			errs = append(errs, fmt.Errorf("listeners[%d].address: must not be empty", i))
		}
	}
	if c.TLS.Enabled() && (c.TLS.Cert == "" || c.TLS.Key == "") {
		errs = append(errs, errors.New("tls: cert and key must both be set"))
	}
	switch c.Auth.Mode {
	case "open":
	case "jwt":
		if c.Auth.JWT.Secret == "" {
			errs = append(errs, errors.New("auth.jwt.secret: required in jwt mode (use ${ENV_VAR} to keep it out of the file)"))
		}
	default:
		errs = append(errs, fmt.Errorf("auth.mode: %q is not one of open, jwt", c.Auth.Mode))
	}
	for i, k := range c.API.Keys {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, fmt.Errorf("api.keys[%d]: empty key", i))
		}
	}
	for i, k := range c.Admin.Keys {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, fmt.Errorf("admin.keys[%d]: empty key", i))
		}
	}
	if c.Limits.MaxFrameBytes <= 0 {
		errs = append(errs, errors.New("limits.max_frame_bytes: must be > 0"))
	}
	if c.Limits.MaxContentBytes <= 0 || c.Limits.MaxContentBytes > c.Limits.MaxFrameBytes {
		errs = append(errs, errors.New("limits.max_content_bytes: must be > 0 and <= max_frame_bytes"))
	}
	if c.Limits.OutboundQueueBytes < 4096 {
		errs = append(errs, errors.New("limits.outbound_queue_bytes: must be >= 4096"))
	}
	if c.Limits.IdleTimeout < 0 || c.Limits.SniffTimeout <= 0 {
		errs = append(errs, errors.New("limits: idle_timeout must be >= 0 and sniff_timeout > 0"))
	}
	if c.Limits.MaxConnections < 0 || c.Limits.MaxConnectionsPerIP < 0 {
		errs = append(errs, errors.New("limits: max_connections and max_connections_per_ip must be >= 0 (0: no cap)"))
	}
	if r := c.Limits.ConnectionRatePerIP; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		errs = append(errs, fmt.Errorf("limits.connection_rate_per_ip: %v must be a number >= 0 (0: no limit)", r))
	}
	switch b := c.Limits.ConnectionBurstPerIP; {
	case b < 0:
		errs = append(errs, fmt.Errorf("limits.connection_burst_per_ip: %d must be >= 0", b))
	case b > 0 && c.Limits.ConnectionRatePerIP == 0:
		errs = append(errs, errors.New("limits.connection_burst_per_ip: set, but connection_rate_per_ip is 0 (no limit): set the rate too"))
	}
	if c.Limits.BodyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("limits.body_timeout: must be > 0, got %s", c.Limits.BodyTimeout))
	}
	if c.Limits.PipelinedChats < 1 || c.Limits.PipelinedChats > 255 {
		errs = append(errs, fmt.Errorf("limits.pipelined_chats: must be from 1 to 255, got %d", c.Limits.PipelinedChats))
	}
	if c.Limits.FrameTimeout < time.Second || c.Limits.FrameTimeout > 200*time.Second {
		errs = append(errs, fmt.Errorf("limits.frame_timeout: must be from 1s to 200s, got %s", c.Limits.FrameTimeout))
	}
	if err := c.Storage.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("storage: %w", err))
	}
	if err := c.Cluster.Validate(c.Storage); err != nil {
		errs = append(errs, fmt.Errorf("cluster: %w", err))
	}
	if err := c.Codecs.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("codecs: %w", err))
	}
	if err := c.Hooks.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("hooks: %w", err))
	}
	errs = append(errs, c.Groups.validate()...)
	if err := c.Shutdown.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Webhooks.validate()...)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	return errors.Join(errs...)
}
