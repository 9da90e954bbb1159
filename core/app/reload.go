package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/transport"
)

// ReloadResult reports one reload attempt.
type ReloadResult struct {
	// Version identifies the configuration that is running after the attempt.
	Version string `json:"version"`
	// Time is when the attempt ended.
	Time time.Time `json:"time"`
	// Trigger says what asked for it: startup, file, signal, api.
	Trigger string `json:"trigger"`
	// Changed lists what took effect, e.g. "limits", "listeners: +tcp :9000".
	Changed []string `json:"changed,omitempty"`
	// Restart lists changes that are accepted but take effect only after a restart.
	Restart []string `json:"restart,omitempty"`
	// Skipped is set when the configuration did not change.
	Skipped bool `json:"skipped,omitempty"`
	// Error says why the new configuration was refused; the old one keeps running.
	Error string `json:"error,omitempty"`
	// Duration is how long validation and the swap took.
	Duration time.Duration `json:"durationNs"`
}

// Step is one part of the gateway that takes new configurations (limits, TLS, auth,
// listeners, codecs, hooks ...), registered with App.AddReloadStep.
//
// A reload runs in two phases, one reload at a time (App.Reload holds a lock, so no two
// calls into steps ever overlap):
//
//  1. Prepare of every step, in registration order, with the running configuration (old)
//     and the candidate (cur, already validated). Prepare checks and builds everything
//     that can fail (opens new ports, loads certificates, starts plugins) and changes
//     nothing that clients see. It returns NoChange when it has nothing to do.
//  2. When every Prepare succeeded, Commit of every Change, in registration order; the
//     candidate then becomes the running configuration. When any Prepare failed,
//     Rollback of every Change that was prepared, in reverse order, and the running
//     configuration stays; the result lists every step's error.
//
// Commit and Rollback are called at most once, and exactly one of them. Commit cannot
// fail. Changes take effect while clients are connected, so what Commit swaps must be
// safe to swap under traffic (atomics or the part's own locks).
type Step interface {
	Prepare(old, cur *config.Config) (Change, error)
}

// Change is what a Step prepared, waiting for the other steps.
type Change interface {
	// Commit makes the change take effect and says what changed, for ReloadResult.Changed
	// (nothing: the step's part turned out to be the same, e.g. a certificate re-read).
	Commit() []string
	// Rollback undoes Prepare (closes what it opened) because another step failed.
	Rollback()
}

// StepFunc adapts a function to Step.
type StepFunc func(old, cur *config.Config) (Change, error)

// Prepare calls f.
func (f StepFunc) Prepare(old, cur *config.Config) (Change, error) { return f(old, cur) }

// CommitFunc is a Change with nothing to undo: Commit calls it, Rollback does nothing.
type CommitFunc func() []string

// Commit calls f.
func (f CommitFunc) Commit() []string { return f() }

// Rollback does nothing: Prepare left nothing behind.
func (CommitFunc) Rollback() {}

// NoChange is the Change of a step that has nothing to do.
var NoChange Change = noChange{}

type noChange struct{}

func (noChange) Commit() []string { return nil }
func (noChange) Rollback()        {}

var (
	_ Step   = StepFunc(nil)
	_ Change = CommitFunc(nil)
	_ Change = noChange{}
)

type step struct {
	name string
	Step
}

type reloadState struct {
	mu      sync.Mutex // serialises reloads
	steps   []step
	version string
	history []ReloadResult
	source  func() (*config.Config, error)
	// boot is the configuration the process started with: what the restart-only keys
	// still run with. Set by the first reload (a.cfg is the startup configuration then).
	boot *config.Config
}

const historyLen = 50

// Version hashes a configuration (after environment expansion) and the files it names
// whose contents matter (the TLS certificate and key), so that a reload that changes
// nothing is recognised and skipped, and a certificate renewed in place is not.
func Version(cfg *config.Config) string {
	h := sha256.New()
	b, _ := json.Marshal(cfg)
	h.Write(b)
	for _, f := range []string{cfg.TLS.Cert, cfg.TLS.Key} {
		if f == "" {
			continue
		}
		if data, err := os.ReadFile(f); err == nil {
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// AddReloadStep registers a part of the gateway that takes new configurations; name
// prefixes its errors. Steps are prepared and committed in registration order (see Step).
func (a *App) AddReloadStep(name string, s Step) {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	a.reload.steps = append(a.reload.steps, step{name: name, Step: s})
}

// SetSource tells the app how to read its configuration again (the file, with the
// command line's overrides applied), for ReloadFromSource.
func (a *App) SetSource(load func() (*config.Config, error)) {
	a.reload.mu.Lock()
	a.reload.source = load
	a.reload.mu.Unlock()
}

// ReloadFromSource reads the configuration again and applies it.
func (a *App) ReloadFromSource(trigger string) ReloadResult {
	a.reload.mu.Lock()
	load := a.reload.source
	a.reload.mu.Unlock()
	if load == nil {
		return a.record(ReloadResult{Trigger: trigger, Error: "no configuration source"})
	}
	start := time.Now()
	cfg, err := load()
	if err != nil {
		return a.record(ReloadResult{Trigger: trigger, Error: err.Error(), Duration: time.Since(start)})
	}
	return a.Reload(cfg, trigger)
}

// Reload validates cfg completely and swaps it in atomically; on any failure the running
// configuration stays and the result says what failed. Connections are kept.
func (a *App) Reload(cfg *config.Config, trigger string) ReloadResult {
	start := time.Now()
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	res := ReloadResult{Trigger: trigger}
	if err := cfg.Validate(); err != nil {
		res.Error = err.Error()
		res.Duration = time.Since(start)
		return a.recordLocked(res)
	}
	v := Version(cfg)
	if v == a.reload.version {
		res.Skipped = true
		res.Duration = time.Since(start)
		return a.recordLocked(res)
	}
	old := a.cfg
	if a.reload.boot == nil {
		a.reload.boot = old
	}
	var changes []Change
	var errs []error
	for _, s := range a.reload.steps {
		c, err := s.Prepare(old, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		if c != nil && c != NoChange {
			changes = append(changes, c)
		}
	}
	if len(errs) > 0 {
		for _, c := range slices.Backward(changes) {
			c.Rollback()
		}
		res.Error = errors.Join(errs...).Error()
		res.Duration = time.Since(start)
		return a.recordLocked(res)
	}
	for _, c := range changes {
		res.Changed = append(res.Changed, c.Commit()...)
	}
	res.Restart = restartOnly(old, cfg, a.reload.boot)
	a.cfg = cfg
	a.reload.version = v
	res.Duration = time.Since(start)
	return a.recordLocked(res)
}

func (a *App) record(r ReloadResult) ReloadResult {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	return a.recordLocked(r)
}

func (a *App) recordLocked(r ReloadResult) ReloadResult {
	r.Version = a.reload.version
	r.Time = time.Now()
	a.reload.history = append(a.reload.history, r)
	if len(a.reload.history) > historyLen {
		a.reload.history = slices.Delete(a.reload.history, 0, len(a.reload.history)-historyLen)
	}
	if a.metrics != nil {
		result := "ok"
		if r.Error != "" {
			result = "error"
		} else if r.Skipped {
			result = "skipped"
		}
		a.metrics.Reloads.WithLabelValues(result).Inc()
	}
	switch {
	case r.Error != "":
		a.log.Error("config reload refused, the running configuration stays", "trigger", r.Trigger, "err", r.Error)
	case r.Skipped:
		a.log.Debug("config reload skipped: nothing changed", "trigger", r.Trigger)
	default:
		a.log.Info("config reloaded", "trigger", r.Trigger, "version", r.Version, "changed", r.Changed,
			"restart_needed", r.Restart, "took", r.Duration)
	}
	return r
}

// ConfigVersion is the running configuration's version.
func (a *App) ConfigVersion() string {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	return a.reload.version
}

// ReloadHistory returns the latest reload attempts, oldest first.
func (a *App) ReloadHistory() []ReloadResult {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	return slices.Clone(a.reload.history)
}

// restartOnly lists the keys that apply only after a restart and that this reload
// changed (from old) to a value other than the one running (boot's): a key set back to
// its running value needs no restart.
func restartOnly(old, cur, boot *config.Config) []string {
	var out []string
	if old.Runtime.EventLoops != cur.Runtime.EventLoops && cur.Runtime.EventLoops != boot.Runtime.EventLoops {
		out = append(out, "runtime.event_loops")
	}
	if old.Log.Format != cur.Log.Format && cur.Log.Format != boot.Log.Format {
		out = append(out, "log.format")
	}
	if !reflect.DeepEqual(old.Cluster, cur.Cluster) && !reflect.DeepEqual(cur.Cluster, boot.Cluster) {
		out = append(out, "cluster")
	}
	if webhookDir(old) != webhookDir(cur) && webhookDir(cur) != webhookDir(boot) {
		out = append(out, "webhooks.queue.dir")
	}
	return out
}

// coreSteps are the reload steps of the core's own settings.
func (a *App) coreSteps() {
	a.AddReloadStep("limits", StepFunc(func(old, cur *config.Config) (Change, error) {
		if old.Limits == cur.Limits && old.Runtime.Workers == cur.Runtime.Workers && old.Log.Level == cur.Log.Level {
			return NoChange, nil
		}
		return CommitFunc(func() []string {
			a.srv.SetLimits(cur.Limits)
			a.gw.SetPipelinedChats(cur.Limits.PipelinedChats)
			a.srv.SetWorkers(cur.Runtime.Workers)
			a.router.SetMaxContentBytes(cur.Limits.MaxContentBytes)
			a.api.SetBodyTimeout(cur.Limits.BodyTimeout)
			if a.level != nil {
				_ = a.level.UnmarshalText([]byte(cur.Log.Level))
			}
			return []string{"limits"}
		}), nil
	}))
	a.AddReloadStep("groups", StepFunc(func(old, cur *config.Config) (Change, error) {
		if old.Groups.Equal(cur.Groups) {
			return NoChange, nil
		}
		return CommitFunc(func() []string {
			a.router.SetOpenGroups(router.NewOpenGroups(cur.Groups.Open))
			a.gw.SetNoticeMaxMembers(cur.Groups.NoticeMaxMembers)
			a.membersPage.Store(int64(cur.Groups.MembersPageSize))
			return []string{"groups"}
		}), nil
	}))
	a.AddReloadStep("tls", StepFunc(func(old, cur *config.Config) (Change, error) {
		// Always reload the files: a renewed certificate keeps its file names.
		cert, err := LoadCertificate(cur.TLS)
		if err != nil {
			return nil, err
		}
		return CommitFunc(func() []string {
			prev := a.srv.Certificate()
			a.srv.SetCertificate(cert)
			if !sameCert(prev, cert) {
				return []string{"tls"}
			}
			return nil
		}), nil
	}))
	a.AddReloadStep("auth", StepFunc(func(old, cur *config.Config) (Change, error) {
		if reflect.DeepEqual(old.Auth, cur.Auth) {
			return NoChange, nil
		}
		authn, err := Authenticator(cur)
		if err != nil {
			return nil, err
		}
		return CommitFunc(func() []string { a.gw.SetAuthenticator(authn); return []string{"auth"} }), nil
	}))
	a.AddReloadStep("api", StepFunc(func(old, cur *config.Config) (Change, error) {
		if reflect.DeepEqual(old.API, cur.API) {
			return NoChange, nil
		}
		return CommitFunc(func() []string { a.api.SetKeys(cur.API.Keys); return []string{"api.keys"} }), nil
	}))
	a.AddReloadStep("listeners", StepFunc(a.prepareListeners))
}

type listenSpec struct {
	mode transport.Mode
	addr string
}

func specs(cfg *config.Config) []listenSpec {
	out := []listenSpec{{transport.ModeShared, cfg.Listen}}
	for _, l := range cfg.Listeners {
		out = append(out, listenSpec{transport.Mode(l.Protocol), l.Address})
	}
	return append(out, codecListens(cfg)...)
}

// prepareListeners opens the ports the new configuration adds (so that a port in use
// fails the reload) and, on commit, closes the ports it drops. Connections accepted on
// a closed port stay open.
func (a *App) prepareListeners(old, cur *config.Config) (Change, error) {
	a.lnMu.Lock()
	current := slices.Clone(a.listeners)
	a.lnMu.Unlock()
	want := specs(cur)
	var keep, opened []*transport.Listener
	var changes []string
	for _, s := range want {
		i := slices.IndexFunc(current, func(l *transport.Listener) bool { return l.Mode() == s.mode && l.Spec() == s.addr })
		if i >= 0 {
			keep = append(keep, current[i])
			current = slices.Delete(current, i, i+1)
			continue
		}
		l, err := a.srv.Listen(s.mode, s.addr)
		if err != nil {
			for _, o := range opened {
				_ = o.Close()
			}
			return nil, err
		}
		opened = append(opened, l)
		changes = append(changes, fmt.Sprintf("listeners: +%s %s", s.mode, s.addr))
	}
	removed := current
	if len(opened) == 0 && len(removed) == 0 {
		return NoChange, nil
	}
	return &listenerChange{a: a, want: want, keep: keep, opened: opened, removed: removed, changes: changes}, nil
}

// listenerChange swaps the listener set: the new ports are open already.
type listenerChange struct {
	a                     *App
	want                  []listenSpec
	keep, opened, removed []*transport.Listener
	changes               []string
}

var _ Change = (*listenerChange)(nil)

// Commit closes the dropped ports and publishes the new set.
func (c *listenerChange) Commit() []string {
	for _, l := range c.removed {
		_ = l.Close()
		c.changes = append(c.changes, fmt.Sprintf("listeners: -%s %s", l.Mode(), l.Spec()))
	}
	c.a.lnMu.Lock()
	c.a.listeners = orderLike(c.want, append(c.keep, c.opened...))
	c.a.lnMu.Unlock()
	return c.changes
}

// Rollback closes the ports Prepare opened.
func (c *listenerChange) Rollback() {
	for _, o := range c.opened {
		_ = o.Close()
	}
}

// orderLike puts the shared port first, as Addr expects.
func orderLike(want []listenSpec, ls []*transport.Listener) []*transport.Listener {
	slices.SortStableFunc(ls, func(x, y *transport.Listener) int {
		ix := slices.IndexFunc(want, func(s listenSpec) bool { return s.mode == x.Mode() && s.addr == x.Spec() })
		iy := slices.IndexFunc(want, func(s listenSpec) bool { return s.mode == y.Mode() && s.addr == y.Spec() })
		return ix - iy
	})
	return ls
}
