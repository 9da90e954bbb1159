package hook

import "time"

// ScriptStatus describes one script of a Runner, for the admin API.
type ScriptStatus struct {
	// Name is the file name in the scripts directory.
	Name string `json:"name"`
	// Hash is the first 12 hex digits of the SHA-256 of the active version.
	Hash string `json:"hash,omitempty"`
	// Version counts the versions loaded since start (1 for the first).
	Version int `json:"version"`
	// Active is set when a version of the script is running.
	Active bool `json:"active"`
	// Hooks are the hook points the active version defines.
	Hooks []Point `json:"hooks,omitempty"`
	// LoadedAt is when the active version was loaded.
	LoadedAt time.Time `json:"loadedAt,omitzero"`
	// LastError is the last load failure (compile or load error), with file and line;
	// it is cleared when a later version loads.
	LastError string `json:"lastError,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// StatusReporter is implemented by Runners that load scripts (and by Noop).
type StatusReporter interface {
	// Status returns the scripts known, in load order. It is safe for concurrent use.
	Status() []ScriptStatus
}

var _ StatusReporter = Noop{}
