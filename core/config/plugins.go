package config

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Codecs configures codec plugins: protocols beyond the built-in ones, each served by a
// plugin subprocess. Owned by the codec plugin work; see plugins/README.md. It is the
// `codecs:` section of conf/timgw.yaml.
type Codecs struct {
	// SocketDir is where plugins put their gRPC Unix sockets, one subdirectory per
	// plugin, emptied at each start (crashed plugins leave sockets behind). Empty: a
	// private temporary directory per gateway run, removed at shutdown (and, after a
	// gateway killed by force, at the next start).
	SocketDir string `yaml:"socket_dir"`
	// Restart says how crashed plugins are restarted.
	Restart CodecRestart `yaml:"restart"`
	// Plugins are the codec plugins, consulted on the shared port in this order (after
	// the built-in protocols).
	Plugins []CodecPlugin `yaml:"plugins"`
}

// CodecRestart is the restart policy of crashed codec plugins.
type CodecRestart struct {
	// BackoffMin is the wait before the first restart; it doubles with each crash in
	// Window, up to BackoffMax.
	BackoffMin time.Duration `yaml:"backoff_min"`
	// BackoffMax caps the wait between restarts.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// MaxCrashes within Window mark a plugin failed: it is not restarted again until
	// the configuration changes (reload) or an administrator restarts it.
	MaxCrashes int `yaml:"max_crashes"`
	// Window is the period MaxCrashes is counted over.
	Window time.Duration `yaml:"window"`
	// PingInterval is how often a running plugin is pinged, each ping waiting at most
	// this long (default 1s).
	PingInterval time.Duration `yaml:"ping_interval"`
	// PingMisses pings in a row unanswered mark a plugin hung (default 3): it is logged,
	// killed (its process group, SIGKILL), its connections closed, and it is restarted
	// like a crashed one.
	PingMisses int `yaml:"ping_misses"`
}

// CodecPlugin is one codec plugin.
type CodecPlugin struct {
	// Name is the protocol's name: connections report it, logs and the status show it,
	// and it must be unique. Lower-case letters, digits, '-' and '_'.
	Name string `yaml:"name"`
	// Builtin names a plugin shipped inside the timgw binary (codec-mqtt); timgw runs
	// itself as the plugin process. Exactly one of Builtin and Path is set.
	Builtin string `yaml:"builtin"`
	// Path is the executable of a third-party plugin.
	Path string `yaml:"path"`
	// Args are extra command-line arguments of the plugin process.
	Args []string `yaml:"args"`
	// Env are extra environment variables of the plugin process (it inherits timgw's).
	Env map[string]string `yaml:"env"`
	// Options are handed to the plugin at its handshake; their meaning is the
	// plugin's (see its README).
	Options map[string]string `yaml:"options"`
	// SharedPort recognises the protocol on the shared port (default true); false
	// serves it only on Listen.
	SharedPort *bool `yaml:"shared_port"`
	// Listen are ports that serve this protocol alone, e.g. [":1883"].
	Listen []string `yaml:"listen"`
	// StartTimeout bounds the plugin's start and handshake (default 10s).
	StartTimeout time.Duration `yaml:"start_timeout"`
	// BatchBytes ends a host→plugin batch at this size (default 256 KiB).
	BatchBytes int `yaml:"batch_bytes"`
	// BatchLinger is how long the host waits to fill a batch (default 0: send as soon
	// as the stream is free, which batches under load without adding latency).
	BatchLinger time.Duration `yaml:"batch_linger"`
	// MaxPendingBytes bounds the bytes queued to the plugin; connections whose data
	// does not fit are closed (default 32 MiB).
	MaxPendingBytes int `yaml:"max_pending_bytes"`
}

// OnSharedPort reports whether the protocol is recognised on the shared port.
func (p CodecPlugin) OnSharedPort() bool { return p.SharedPort == nil || *p.SharedPort }

// Codec restart defaults.
const (
	DefaultCodecBackoffMin  = 200 * time.Millisecond
	DefaultCodecBackoffMax  = 30 * time.Second
	DefaultCodecMaxCrashes  = 5
	DefaultCodecCrashWindow = 2 * time.Minute
	DefaultCodecStart       = 10 * time.Second
	// DefaultCodecPingInterval and DefaultCodecPingMisses: a plugin silent for about
	// 3 s is hung.
	DefaultCodecPingInterval = time.Second
	DefaultCodecPingMisses   = 3
)

// WithDefaults returns c with zero values replaced by their defaults.
func (c Codecs) WithDefaults() Codecs {
	r := &c.Restart
	if r.BackoffMin <= 0 {
		r.BackoffMin = DefaultCodecBackoffMin
	}
	if r.BackoffMax <= 0 {
		r.BackoffMax = DefaultCodecBackoffMax
	}
	if r.MaxCrashes <= 0 {
		r.MaxCrashes = DefaultCodecMaxCrashes
	}
	if r.Window <= 0 {
		r.Window = DefaultCodecCrashWindow
	}
	if r.PingInterval <= 0 {
		r.PingInterval = DefaultCodecPingInterval
	}
	if r.PingMisses <= 0 {
		r.PingMisses = DefaultCodecPingMisses
	}
	plugins := make([]CodecPlugin, len(c.Plugins))
	for i, p := range c.Plugins {
		if p.StartTimeout <= 0 {
			p.StartTimeout = DefaultCodecStart
		}
		plugins[i] = p
	}
	c.Plugins = plugins
	return c
}

var codecName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// reservedCodecNames are the built-in protocols and listener modes.
var reservedCodecNames = map[string]bool{
	"tcp": true, "ws": true, "wss": true, "http": true, "https": true, "tls": true, "tls+tcp": true, "shared": true,
}

// Validate checks the codecs section.
func (c Codecs) Validate() error {
	var errs []error
	seen := map[string]bool{}
	if c.Restart.BackoffMin < 0 || c.Restart.BackoffMax < 0 || c.Restart.Window < 0 || c.Restart.MaxCrashes < 0 ||
		c.Restart.PingInterval < 0 || c.Restart.PingMisses < 0 {
		errs = append(errs, errors.New("codecs.restart: values must not be negative"))
	}
	for i, p := range c.Plugins {
		at := fmt.Sprintf("codecs.plugins[%d]", i)
		switch {
		case !codecName.MatchString(p.Name):
			errs = append(errs, fmt.Errorf("%s.name: %q must be 1-32 of a-z, 0-9, '-', '_', starting with a letter", at, p.Name))
		case reservedCodecNames[p.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is a built-in protocol", at, p.Name))
		case seen[p.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, p.Name))
		}
		seen[p.Name] = true
		if (p.Builtin == "") == (p.Path == "") {
			errs = append(errs, fmt.Errorf("%s: set exactly one of builtin and path", at))
		}
		if !p.OnSharedPort() && len(p.Listen) == 0 {
			errs = append(errs, fmt.Errorf("%s: shared_port is false and listen is empty: the protocol would be served nowhere", at))
		}
		for j, a := range p.Listen {
			if a == "" {
				errs = append(errs, fmt.Errorf("%s.listen[%d]: empty address", at, j))
			}
		}
		if p.StartTimeout < 0 || p.BatchBytes < 0 || p.BatchLinger < 0 || p.MaxPendingBytes < 0 {
			errs = append(errs, fmt.Errorf("%s: start_timeout, batch_bytes, batch_linger and max_pending_bytes must not be negative", at))
		}
	}
	return errors.Join(errs...)
}
