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

// step is one part of the gateway that takes a new configuration. prepare validates and
// builds everything that can fail, changing nothing that clients see; commit swaps it in
// and cannot fail; rollback undoes prepare when another step failed.
type step struct {
	name    string
	prepare func(old, cur *config.Config) (commit func() []string, rollback func(), err error)
}

type reloadState struct {
	mu      sync.Mutex // serialises reloads
	steps   []step
	version string
	history []ReloadResult
	source  func() (*config.Config, error)
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

// AddReloadStep registers a part of the gateway that takes new configurations. Steps run
// in registration order.
func (a *App) AddReloadStep(name string, prepare func(old, cur *config.Config) (commit func() []string, rollback func(), err error)) {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	a.reload.steps = append(a.reload.steps, step{name: name, prepare: prepare})
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
	var commits []func() []string
	var rollbacks []func()
	var errs []error
	for _, s := range a.reload.steps {
		commit, rollback, err := s.prepare(old, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		if commit != nil {
			commits = append(commits, commit)
		}
		if rollback != nil {
			rollbacks = append(rollbacks, rollback)
		}
	}
	if len(errs) > 0 {
		for _, rb := range slices.Backward(rollbacks) {
			rb()
		}
		res.Error = errors.Join(errs...).Error()
		res.Duration = time.Since(start)
		return a.recordLocked(res)
	}
	for _, c := range commits {
		res.Changed = append(res.Changed, c()...)
	}
	res.Restart = restartOnly(old, cfg)
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

// restartOnly lists changed keys that apply only after a restart.
func restartOnly(old, cur *config.Config) []string {
	var out []string
	if old.Runtime.EventLoops != cur.Runtime.EventLoops {
		out = append(out, "runtime.event_loops")
	}
	if old.Log.Format != cur.Log.Format {
		out = append(out, "log.format")
	}
	if !reflect.DeepEqual(old.Cluster, cur.Cluster) {
		out = append(out, "cluster")
	}
	return out
}

// coreSteps are the reload steps of the core's own settings.
func (a *App) coreSteps() {
	a.AddReloadStep("limits", func(old, cur *config.Config) (func() []string, func(), error) {
		if old.Limits == cur.Limits && old.Runtime.Workers == cur.Runtime.Workers && old.Log.Level == cur.Log.Level {
			return nil, nil, nil
		}
		return func() []string {
			a.srv.SetLimits(cur.Limits)
			a.srv.SetWorkers(cur.Runtime.Workers)
			a.router.SetMaxContentBytes(cur.Limits.MaxContentBytes)
			if a.level != nil {
				_ = a.level.UnmarshalText([]byte(cur.Log.Level))
			}
			return []string{"limits"}
		}, nil, nil
	})
	a.AddReloadStep("tls", func(old, cur *config.Config) (func() []string, func(), error) {
		// Always reload the files: a renewed certificate keeps its file names.
		cert, err := LoadCertificate(cur.TLS)
		if err != nil {
			return nil, nil, err
		}
		return func() []string {
			prev := a.srv.Certificate()
			a.srv.SetCertificate(cert)
			if !sameCert(prev, cert) {
				return []string{"tls"}
			}
			return nil
		}, nil, nil
	})
	a.AddReloadStep("auth", func(old, cur *config.Config) (func() []string, func(), error) {
		if reflect.DeepEqual(old.Auth, cur.Auth) {
			return nil, nil, nil
		}
		authn, err := Authenticator(cur)
		if err != nil {
			return nil, nil, err
		}
		return func() []string { a.gw.SetAuthenticator(authn); return []string{"auth"} }, nil, nil
	})
	a.AddReloadStep("api", func(old, cur *config.Config) (func() []string, func(), error) {
		if reflect.DeepEqual(old.API, cur.API) {
			return nil, nil, nil
		}
		return func() []string { a.api.SetKeys(cur.API.Keys); return []string{"api.keys"} }, nil, nil
	})
	a.AddReloadStep("listeners", a.prepareListeners)
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
func (a *App) prepareListeners(old, cur *config.Config) (func() []string, func(), error) {
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
			return nil, nil, err
		}
		opened = append(opened, l)
		changes = append(changes, fmt.Sprintf("listeners: +%s %s", s.mode, s.addr))
	}
	removed := current
	if len(opened) == 0 && len(removed) == 0 {
		return nil, nil, nil
	}
	commit := func() []string {
		for _, l := range removed {
			_ = l.Close()
			changes = append(changes, fmt.Sprintf("listeners: -%s %s", l.Mode(), l.Spec()))
		}
		a.lnMu.Lock()
		a.listeners = orderLike(want, append(keep, opened...))
		a.lnMu.Unlock()
		return changes
	}
	rollback := func() {
		for _, o := range opened {
			_ = o.Close()
		}
	}
	return commit, rollback, nil
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
