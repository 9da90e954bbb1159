package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Hook failure policies: what a hook point decides when one of its scripts fails (a Lua
// error, a timeout, a bad return value).
const (
	// PolicyFailOpen skips the failed script: the call goes on as if it had no opinion.
	PolicyFailOpen = "fail_open"
	// PolicyFailClosed refuses: connect and join are denied, auth and message rejected.
	PolicyFailClosed = "fail_closed"
)

// Hooks configures the Lua hooks (core/lua; scripts/README.md documents the scripts).
// It is the `hooks:` section of conf/timgw.yaml.
type Hooks struct {
	// Enabled runs the hooks. False: every hook point is a no-op.
	Enabled bool `yaml:"enabled"`
	// Dir is the directory of the scripts and word lists (relative to the working
	// directory). When it does not exist, the scripts built into the binary are used.
	Dir string `yaml:"dir"`
	// Watch reloads scripts within about a second of a change in Dir.
	Watch bool `yaml:"watch"`
	// Timeout bounds one script's run for one call; a script still running then is
	// stopped and counts as a failure of that script.
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the number of Lua states, which is the number of hook calls that can
	// run at the same time (0: 4 per CPU).
	PoolSize int `yaml:"pool_size"`
	// Scripts are the files of Dir to load, in order; shell patterns select several
	// (a pattern's matches load in name order). A name without a pattern must exist.
	Scripts []string `yaml:"scripts"`
	// Connect, Auth, Message, Join and Disconnect configure each hook point.
	Connect    HookPoint `yaml:"connect"`
	Auth       HookPoint `yaml:"auth"`
	Message    HookPoint `yaml:"message"`
	Join       HookPoint `yaml:"join"`
	Disconnect HookPoint `yaml:"disconnect"`
	// Vars are values scripts read with tim.config(key): strings, numbers, booleans,
	// lists and maps.
	Vars map[string]any `yaml:"vars"`
	// MaxStringBytes bounds every string a script builds (string.rep, format, gsub,
	// table.concat, `..`, tim helpers); 0: 1 MiB.
	MaxStringBytes int `yaml:"max_string_bytes"`
	// MaxCallBytes bounds the bytes of strings one script call builds in all; 0: 16 MiB.
	MaxCallBytes int `yaml:"max_call_bytes"`
	// Senders are the service identities (user ids such as "bot") that scripts may send
	// messages as, with tim.send in the message hook. Empty: tim.send is refused.
	Senders []string `yaml:"senders"`
}

// HookPoint configures one hook point.
type HookPoint struct {
	// Order names scripts that run first at this point, in this order; the other loaded
	// scripts that define the hook follow in Scripts order.
	Order []string `yaml:"order"`
	// Policy is fail_open or fail_closed (ignored for disconnect, which decides nothing).
	Policy string `yaml:"policy"`
}

// DefaultHooks returns the hooks configuration of a file that leaves `hooks:` out (the
// section of the embedded conf/timgw.yaml): hooks on, the shipped moderation script with
// a small word list, fail-closed auth.
func DefaultHooks() Hooks { return Defaults().Hooks }

// Points returns the hook points by name, for code that treats them alike.
func (h *Hooks) Points() map[string]*HookPoint {
	return map[string]*HookPoint{
		"connect": &h.Connect, "auth": &h.Auth, "message": &h.Message,
		"join": &h.Join, "disconnect": &h.Disconnect,
	}
}

// Validate checks the hooks section; errors are prefixed with the key path. A disabled
// section may leave dir, timeout and policies empty (the zero Hooks is valid).
func (h *Hooks) Validate() error {
	var errs []error
	if h.Enabled && strings.TrimSpace(h.Dir) == "" {
		errs = append(errs, errors.New("hooks.dir: must not be empty when hooks are enabled"))
	}
	if (h.Enabled || h.Timeout != 0) && (h.Timeout <= 0 || h.Timeout > 10*time.Second) {
		errs = append(errs, fmt.Errorf("hooks.timeout: %v must be > 0 and <= 10s", h.Timeout))
	}
	if h.PoolSize < 0 || h.PoolSize > 4096 {
		errs = append(errs, fmt.Errorf("hooks.pool_size: %d must be between 0 and 4096", h.PoolSize))
	}
	for i, s := range h.Scripts {
		if err := validScriptName(s, true); err != nil {
			errs = append(errs, fmt.Errorf("hooks.scripts[%d]: %w", i, err))
		}
	}
	for i, u := range h.Senders {
		if strings.TrimSpace(u) == "" || len(u) > 128 {
			errs = append(errs, fmt.Errorf("hooks.senders[%d]: %q is not a user id of 1 to 128 bytes", i, u))
		}
	}
	for name, p := range h.Points() {
		switch p.Policy {
		case PolicyFailOpen, PolicyFailClosed:
		case "":
			if h.Enabled && name != "disconnect" {
				errs = append(errs, fmt.Errorf("hooks.%s.policy: must be %s or %s", name, PolicyFailOpen, PolicyFailClosed))
			}
		default:
			errs = append(errs, fmt.Errorf("hooks.%s.policy: %q is not one of %s, %s", name, p.Policy, PolicyFailOpen, PolicyFailClosed))
		}
		for i, s := range p.Order {
			if err := validScriptName(s, false); err != nil {
				errs = append(errs, fmt.Errorf("hooks.%s.order[%d]: %w", name, i, err))
			}
		}
	}
	if h.MaxStringBytes != 0 && (h.MaxStringBytes < 1024 || h.MaxStringBytes > 256<<20) {
		errs = append(errs, fmt.Errorf("hooks.max_string_bytes: %d must be between 1024 and 268435456 (0: 1 MiB)", h.MaxStringBytes))
	}
	if h.MaxCallBytes != 0 && (h.MaxCallBytes < max(h.MaxStringBytes, 1024) || h.MaxCallBytes > 1<<30) {
		errs = append(errs, fmt.Errorf("hooks.max_call_bytes: %d must be between max_string_bytes and 1073741824 (0: 16 MiB)", h.MaxCallBytes))
	}
	for k := range h.Vars {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("hooks.vars: empty key"))
		}
	}
	return errors.Join(errs...)
}

// validScriptName accepts a file name of the scripts directory (a pattern when
// patterns is set): no directories, no "..".
func validScriptName(s string, patterns bool) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("empty script name")
	case strings.ContainsAny(s, `/\`) || s == "." || s == "..":
		return fmt.Errorf("%q: must be a file name of hooks.dir, not a path", s)
	}
	if _, err := filepath.Match(s, ""); err != nil {
		return fmt.Errorf("%q: bad pattern: %w", s, err)
	}
	if !patterns && strings.ContainsAny(s, "*?[") {
		return fmt.Errorf("%q: order lists script names, not patterns", s)
	}
	return nil
}
