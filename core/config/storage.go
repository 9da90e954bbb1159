package config

import (
	"errors"
	"fmt"
	"time"
)

// Storage plugins built into the timgw binary.
const (
	StorageBolt     = "bolt"     // embedded default: bbolt in Dir
	StorageMongo    = "mongo"    // MongoDB (mongo-driver v2)
	StorageNone     = "none"     // persistence off: no offline delivery, history or recall
	StorageExternal = "external" // a third-party plugin executable: Command
)

// Storage configures the storage plugin that persists chats (the `storage:` section of
// conf/timgw.yaml). The plugin runs as a subprocess; see docs/storage.md. Zero values
// take the defaults of Resolved, so a file without the section stores to ./data.
type Storage struct {
	// Plugin is bolt (default), mongo, none, or external.
	Plugin string `yaml:"plugin"`
	// Dir is the bolt plugin's data directory (default "data", relative to the working
	// directory). One gateway per directory: a second one fails to start.
	Dir string `yaml:"dir"`
	// NoSync makes the bolt plugin skip fsync: acknowledged chats can be lost on a
	// machine crash (not on a process crash). Benchmarks only.
	NoSync bool `yaml:"nosync"`
	// Mongo configures the mongo plugin.
	Mongo MongoStorage `yaml:"mongo"`
	// Command is an external plugin's executable and arguments.
	Command []string `yaml:"command"`
	// Options are given to an external plugin's Open as a JSON object.
	Options map[string]any `yaml:"options"`
	// RecallWindow is how long after sending a sender may recall a chat (default 2m;
	// negative: senders cannot recall, only administrators can).
	RecallWindow time.Duration `yaml:"recall_window"`
	// WriteTimeout bounds how long a chat waits to be stored, plugin restarts included
	// (default 5s); then the sender gets code 10030.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// StartTimeout is how long the gateway waits at start for the plugin to open its
	// store (default 30s); then the gateway does not start.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// RestartBackoff is the longest pause between restarts of a crashed plugin (default
	// 5s; the first restart is immediate, then 100ms doubling up to this).
	RestartBackoff time.Duration `yaml:"restart_backoff"`
	// PageSize is the default number of messages of a cmd 19 answer (default 100); a
	// client's count may ask for up to MaxPageSize.
	PageSize int `yaml:"page_size"`
	// MaxPageSize caps a cmd 19 count (default 1000).
	MaxPageSize int `yaml:"max_page_size"`
	// SocketDir is where the plugin's Unix socket is made (default: a new private
	// directory in the system's temporary directory).
	SocketDir string `yaml:"socket_dir"`
	// PingInterval is how often the plugin is pinged, each ping waiting at most this
	// long (default 1s).
	PingInterval time.Duration `yaml:"ping_interval"`
	// PingMisses pings in a row unanswered mark the plugin hung (default 3): it is
	// logged, killed (its process group, SIGKILL) and restarted.
	PingMisses int `yaml:"ping_misses"`
	// Retention is how long messages are kept, and how the janitor removes the expired.
	Retention Retention `yaml:"retention"`
	// ReadFanoutMembers: a group chat with more receivers than this is stored once and
	// pulled by each member on its offline query (read fan-out), when the plugin supports
	// it; at most this many get an inbox entry each at send (write fan-out). 0: always
	// write fan-out. Default 500 (conf/timgw.yaml). See docs/storage.md.
	ReadFanoutMembers int `yaml:"read_fanout_members"`
}

// MongoStorage configures the mongo plugin.
type MongoStorage struct {
	// URI is the MongoDB connection string (default mongodb://127.0.0.1:27017). Without
	// a w option in it, writes use w:majority with journaling.
	URI string `yaml:"uri"`
	// Database is the database name (default timgw).
	Database string `yaml:"database"`
	// Timeout bounds connecting and each operation (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// Resolved returns s with defaults in place of zero values.
func (s Storage) Resolved() Storage {
	if s.Plugin == "" {
		s.Plugin = StorageBolt
	}
	if s.Dir == "" {
		s.Dir = "data"
	}
	if s.Mongo.URI == "" {
		s.Mongo.URI = "mongodb://127.0.0.1:27017"
	}
	if s.Mongo.Database == "" {
		s.Mongo.Database = "timgw"
	}
	if s.Mongo.Timeout == 0 {
		s.Mongo.Timeout = 10 * time.Second
	}
	if s.RecallWindow == 0 {
		s.RecallWindow = 2 * time.Minute
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = 5 * time.Second
	}
	if s.StartTimeout == 0 {
		s.StartTimeout = 30 * time.Second
	}
	if s.RestartBackoff == 0 {
		s.RestartBackoff = 5 * time.Second
	}
	if s.PageSize == 0 {
		s.PageSize = 100
	}
	if s.MaxPageSize == 0 {
		s.MaxPageSize = 1000
	}
	if s.PingInterval == 0 {
		s.PingInterval = time.Second
	}
	if s.PingMisses == 0 {
		s.PingMisses = 3
	}
	s.Retention = s.Retention.Resolved()
	return s
}

// Enabled reports whether chats are persisted.
func (s Storage) Enabled() bool { return s.Resolved().Plugin != StorageNone }

// Validate checks the section (with its defaults applied).
func (s Storage) Validate() error {
	r := s.Resolved()
	var errs []error
	switch r.Plugin {
	case StorageBolt, StorageMongo, StorageNone:
		if len(r.Command) > 0 {
			errs = append(errs, fmt.Errorf("storage.command: only for plugin %s, not %s", StorageExternal, r.Plugin))
		}
	case StorageExternal:
		if len(r.Command) == 0 || r.Command[0] == "" {
			errs = append(errs, errors.New("storage.command: plugin external needs the plugin's executable"))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.plugin: %q is not one of bolt, mongo, none, external", r.Plugin))
	}
	if r.WriteTimeout < 0 || r.StartTimeout < 0 || r.RestartBackoff < 0 || r.Mongo.Timeout < 0 {
		errs = append(errs, errors.New("storage: write_timeout, start_timeout, restart_backoff and mongo.timeout must be >= 0"))
	}
	if r.PingInterval < 0 || r.PingMisses < 0 {
		errs = append(errs, errors.New("storage: ping_interval and ping_misses must be > 0"))
	}
	if r.PageSize < 0 || r.MaxPageSize < 0 || r.PageSize > r.MaxPageSize {
		errs = append(errs, errors.New("storage: page_size must be > 0 and <= max_page_size"))
	}
	if r.ReadFanoutMembers < 0 {
		errs = append(errs, fmt.Errorf("storage.read_fanout_members: %d must be >= 0 (0: always write fan-out)", r.ReadFanoutMembers))
	}
	if err := r.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
