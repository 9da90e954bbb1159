package lua

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// point indexes the hook points in arrays.
type point int

const (
	pConnect point = iota
	pAuth
	pMessage
	pJoin
	pDisconnect
	pAuthenticated
	pEvent
	numPoints
	pLoad = numPoints // a script's chunk running at load time (logs only)
)

var pointNames = [numPoints + 1]hook.Point{
	hook.PointConnect, hook.PointAuth, hook.PointMessage, hook.PointJoin, hook.PointDisconnect, hook.PointAuthenticated, hook.PointEvent, "load",
}

func (p point) String() string { return string(pointNames[p]) }

// script is one compiled version of a file. It is immutable once built, except for
// the log limiter.
type script struct {
	name     string
	hash     string
	proto    *lua.FunctionProto
	version  int
	loadedAt time.Time
	lastLog  [numPoints + 1]atomic.Int64 // clock of the last failure logged per point, to rate-limit logs
}

// scriptState is what the Runtime remembers of a file across rebuilds.
type scriptState struct {
	active    *script
	hooks     uint8        // hook points the active version defines (bit per point)
	schemas   []*varSchema // the vars the active version declared (tim.vars)
	guard     *guard       // the active version's tim.guard (nil: none)
	versions  int
	lastErr   string
	lastErrAt time.Time
}

// generation is an immutable snapshot of what calls run: scripts, chains, policies.
// Calls load it once, and VMs are built for one generation.
type generation struct {
	id          uint64
	timeout     int64 // ns per script call
	loadTimeout int64 // ns for a chunk at load time
	maxString   int   // hooks.max_string_bytes
	maxCall     int   // hooks.max_call_bytes
	scripts     []*script
	guards      []*guard         // aligned with scripts: tim.guard of each (nil: none)
	chains      [numPoints][]int // indexes into scripts, in call order
	failClosed  [numPoints]bool
	vars        map[string]any
	words       map[string][]string // word-list files by name
	senders     map[string]bool     // hooks.senders: who tim.send may send as
	fingerprint string
	matchers    matcherCache
}

// matcherCache shares compiled word lists between the VMs of a generation.
type matcherCache struct {
	mu sync.Mutex
	m  map[string]*Matcher
}

func (c *matcherCache) get(key string, build func() *Matcher) *Matcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.m[key]; ok {
		return m
	}
	if c.m == nil {
		c.m = make(map[string]*Matcher)
	}
	m := build()
	c.m[key] = m
	return m
}

// source is one script file read from the directory.
type source struct {
	name string
	data []byte
	hash string
}

// rebuild reads the directory, compiles what changed, checks every script in a
// scratch VM, and publishes a new generation. It runs with reloadMu held. With strict
// (at start) any failure is returned and nothing is published.
func (r *Runtime) rebuild(why string, strict bool) error {
	cfg := r.cfg
	if !cfg.Enabled {
		r.publish(&generation{}, poolSize(cfg.PoolSize))
		r.scripts, r.order = map[string]*scriptState{}, nil
		return nil
	}
	srcs, missing, words, errs := readSources(r.fsys, cfg.Scripts)
	fp := fingerprint(srcs, words, cfg)
	if cur := r.gen.Load(); why == "watch" && cur.fingerprint == fp {
		return nil // nothing that matters changed (an editor's temp file, a touch)
	}
	g := &generation{
		id:          r.nextGen + 1,
		timeout:     int64(cfg.Timeout),
		loadTimeout: int64(max(10*cfg.Timeout, 250*time.Millisecond)),
		maxString:   cmp.Or(cfg.MaxStringBytes, defaultMaxString),
		maxCall:     cmp.Or(cfg.MaxCallBytes, defaultMaxCall),
		vars:        cfg.Vars,
		words:       words,
		fingerprint: fp,
		senders:     make(map[string]bool, len(cfg.Senders)),
	}
	for _, u := range cfg.Senders {
		g.senders[u] = true
	}
	// authenticated follows the auth point's policy and order, event the message point's.
	for p, hp := range []config.HookPoint{cfg.Connect, cfg.Auth, cfg.Message, cfg.Join, cfg.Disconnect, cfg.Auth, cfg.Message} {
		g.failClosed[p] = hp.Policy == config.PolicyFailClosed
	}
	checker, err := r.newVM(g, false)
	if err != nil {
		return fmt.Errorf("hooks: create Lua state: %w", err)
	}
	defer r.discard(checker)

	states := make(map[string]*scriptState, len(srcs))
	var masks []uint8
	for _, src := range srcs {
		st := r.scripts[src.name]
		if st == nil {
			st = &scriptState{}
		}
		states[src.name] = st
		s, mask, err := r.check(checker, st, src)
		if err != nil {
			errs = append(errs, err)
			st.lastErr, st.lastErrAt = err.Error(), time.Now()
			r.metrics.reloadFailed(src.name)
			r.log.Error("hooks: script rejected", "script", src.name, "error", err, "kept_version", activeVersion(st))
		}
		if s != nil {
			g.scripts = append(g.scripts, s)
			g.guards = append(g.guards, st.guard)
			masks = append(masks, mask)
		}
	}
	for _, name := range missing {
		st := r.scripts[name]
		if st == nil {
			st = &scriptState{}
		}
		st.active, st.hooks = nil, 0
		st.lastErr, st.lastErrAt = fmt.Sprintf("load script %s: file not found", name), time.Now()
		states[name] = st
	}
	if strict && len(errs) > 0 {
		return fmt.Errorf("hooks: %w", errors.Join(errs...))
	}
	for name := range r.scripts {
		if states[name] == nil {
			r.log.Info("hooks: script removed", "script", name)
		}
	}
	g.chains = buildChains(cfg, g.scripts, masks, r)
	r.scripts = states
	r.order = r.order[:0]
	for _, src := range srcs {
		r.order = append(r.order, src.name)
	}
	r.order = append(r.order, missing...)
	r.publish(g, poolSize(cfg.PoolSize))
	r.log.Info("hooks: scripts active", "why", why, "generation", g.id, "scripts", len(g.scripts), "errors", len(errs))
	return errors.Join(errs...)
}

// check compiles src if it changed and loads it in the scratch VM. It returns the
// version to run (the new one, the kept old one, or nil) and its hook mask.
func (r *Runtime) check(checker *vm, st *scriptState, src source) (*script, uint8, error) {
	var loadErr error
	if st.active == nil || st.active.hash != src.hash {
		s, err := compile(src)
		if err == nil {
			var mask uint8
			var schemas []*varSchema
			var gd *guard
			if mask, schemas, gd, err = checker.loadScript(s); err == nil {
				st.versions++
				s.version, s.loadedAt = st.versions, time.Now()
				st.active, st.hooks, st.lastErr, st.lastErrAt = s, mask, "", time.Time{}
				st.schemas, st.guard = schemas, gd
				r.log.Info("hooks: script loaded", "script", s.name, "version", s.version, "hash", s.hash, "hooks", maskNames(mask))
				return s, mask, nil
			}
		}
		loadErr = err
		if st.active == nil {
			return nil, 0, loadErr
		}
	}
	// Same content as the active version, or a rejected new one: (re)check the active
	// version against this generation's vars and word lists.
	mask, schemas, gd, err := checker.loadScript(st.active)
	if err != nil {
		s := st.active
		st.active, st.hooks, st.schemas, st.guard = nil, 0, nil, nil
		return nil, 0, errors.Join(loadErr, fmt.Errorf("load script %s (version %d): %w", s.name, s.version, err))
	}
	st.hooks, st.schemas, st.guard = mask, schemas, gd
	if loadErr == nil {
		st.lastErr, st.lastErrAt = "", time.Time{} // the file is the active version again
	}
	return st.active, mask, loadErr
}

// compile parses and compiles a script once; VMs instantiate the proto.
func compile(src source) (*script, error) {
	chunk, err := parse.Parse(bytes.NewReader(src.data), src.name)
	if err != nil {
		return nil, fmt.Errorf("compile script %s: %w", src.name, err)
	}
	rewriteConcat(chunk)
	proto, err := lua.Compile(chunk, src.name)
	if err != nil {
		return nil, fmt.Errorf("compile script %s: %w", src.name, err)
	}
	return &script{name: src.name, hash: src.hash, proto: proto}, nil
}

// readSources reads the files selected by the patterns, in order, and the word-list
// files (*.txt). A plain name that does not exist is an error, and listed in missing.
func readSources(fsys fs.FS, patterns []string) (srcs []source, missing []string, words map[string][]string, errs []error) {
	seen := map[string]bool{}
	for _, pat := range patterns {
		names, err := fs.Glob(fsys, pat)
		if err != nil {
			errs = append(errs, fmt.Errorf("script pattern %q: %w", pat, err))
			continue
		}
		if len(names) == 0 && !strings.ContainsAny(pat, "*?[") {
			errs = append(errs, fmt.Errorf("load script %s: file not found", pat))
			missing = append(missing, pat)
		}
		for _, name := range names {
			if seen[name] || !isFile(fsys, name) {
				continue
			}
			seen[name] = true
			data, err := fs.ReadFile(fsys, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("load script %s: %w", name, err))
				continue
			}
			sum := sha256.Sum256(data)
			srcs = append(srcs, source{name: name, data: data, hash: hex.EncodeToString(sum[:6])})
		}
	}
	words = map[string][]string{}
	if names, err := fs.Glob(fsys, "*.txt"); err == nil {
		for _, name := range names {
			if data, err := fs.ReadFile(fsys, name); err == nil {
				words[name] = parseWordList(data)
			}
		}
	}
	return srcs, missing, words, errs
}

func isFile(fsys fs.FS, name string) bool {
	st, err := fs.Stat(fsys, name)
	return err == nil && st.Mode().IsRegular()
}

// parseWordList reads one word or phrase per line; blank lines and lines starting
// with # are skipped.
func parseWordList(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// fingerprint identifies what a generation is built from.
func fingerprint(srcs []source, words map[string][]string, cfg config.Hooks) string {
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "s %s %s\n", s.name, s.hash)
	}
	for _, name := range sortedKeys(words) {
		fmt.Fprintf(h, "w %s %q\n", name, words[name])
	}
	fmt.Fprintf(h, "c %+v\n", cfg)
	return hex.EncodeToString(h.Sum(nil))
}

// buildChains orders, per hook point, the scripts that define it: the point's order
// list first, then the others in load order.
func buildChains(cfg config.Hooks, scripts []*script, masks []uint8, r *Runtime) [numPoints][]int {
	var chains [numPoints][]int
	orders := [numPoints][]string{cfg.Connect.Order, cfg.Auth.Order, cfg.Message.Order, cfg.Join.Order, cfg.Disconnect.Order, cfg.Auth.Order, cfg.Message.Order}
	for p := point(0); p < numPoints; p++ {
		used := make([]bool, len(scripts))
		for _, name := range orders[p] {
			found := false
			for i, s := range scripts {
				if s.name == name || strings.TrimSuffix(s.name, path.Ext(s.name)) == name {
					found = true
					if masks[i]&(1<<p) != 0 && !used[i] {
						chains[p] = append(chains[p], i)
						used[i] = true
					}
				}
			}
			if !found {
				r.log.Warn("hooks: order names a script that is not loaded", "hook", p.String(), "script", name)
			}
		}
		for i := range scripts {
			if masks[i]&(1<<p) != 0 && !used[i] {
				chains[p] = append(chains[p], i)
			}
		}
	}
	return chains
}

func maskNames(mask uint8) []hook.Point {
	var out []hook.Point
	for p := point(0); p < numPoints; p++ {
		if mask&(1<<p) != 0 {
			out = append(out, pointNames[p])
		}
	}
	return out
}

func activeVersion(st *scriptState) int {
	if st.active == nil {
		return 0
	}
	return st.active.version
}

// Status returns the scripts of the directory that the configuration selects, in load
// order, with their active version and last load error.
func (r *Runtime) Status() []hook.ScriptStatus {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	out := make([]hook.ScriptStatus, 0, len(r.order))
	for _, name := range r.order {
		st := r.scripts[name]
		if st == nil {
			continue
		}
		ss := hook.ScriptStatus{Name: name, Version: st.versions, LastError: st.lastErr, LastErrorAt: st.lastErrAt}
		if st.active != nil {
			ss.Active, ss.Hash, ss.Version = true, st.active.hash, st.active.version
			ss.LoadedAt, ss.Hooks = st.active.loadedAt, maskNames(st.hooks)
		}
		out = append(out, ss)
	}
	return out
}
