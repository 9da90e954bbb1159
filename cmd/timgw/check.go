package main

// `timgw check`: validate a configuration the way a start would, without serving.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/timgw/timgw/core/app"
	"github.com/timgw/timgw/core/codecplugin"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/lua"
	"github.com/timgw/timgw/core/store"
)

// runCheck is `timgw check [-config FILE] [-listen ADDR]`: it reads and validates the
// whole configuration, loads the TLS certificate, compiles the Lua scripts, starts the
// storage and codec plugins (each handshaken, the store opened) and stops them again,
// then prints what a start would run to out. Any failure is returned, naming the
// problem; nothing listens and no cluster is joined. Warnings go to the log on stderr.
func runCheck(args []string, out io.Writer) error {
	fl := flag.NewFlagSet("timgw check", flag.ContinueOnError)
	cfgPath := fl.String("config", defaultConfig, "configuration file (YAML) to check")
	listen := fl.String("listen", "", "address of the shared port, overriding the config's listen")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("check: unexpected argument %q", fl.Arg(0))
	}
	explicit := false
	fl.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, source, err := loadConfig(*cfgPath, explicit)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	log := newLogger(config.Log{Level: "warn", Format: cfg.Log.Format}, new(slog.LevelVar))
	s, err := checkParts(cfg, log)
	if err != nil {
		return fmt.Errorf("check: config %s: %w", source, err)
	}
	s.config = source
	return s.print(out)
}

// checkSummary is what a start with the configuration would run.
type checkSummary struct {
	config, listen, protocols, listeners, tls, auth, keys, storage, hooks, codecs, cluster, webhooks string
}

// checkParts builds and stops every part of cfg that can fail at start, except the
// listeners and the cluster (binding or joining would disturb a running gateway).
func checkParts(cfg *config.Config, log *slog.Logger) (*checkSummary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := app.Authenticator(cfg); err != nil {
		return nil, err
	}
	if _, err := app.LoadCertificate(cfg.TLS); err != nil {
		return nil, err
	}
	hooks, err := checkHooks(cfg.Hooks, log)
	if err != nil {
		return nil, err
	}
	st, err := checkStorage(cfg.Storage, cfg.Cluster.Enabled, log)
	if err != nil {
		return nil, err
	}
	codecs, err := checkCodecs(cfg, log)
	if err != nil {
		return nil, err
	}
	return &checkSummary{
		listen:    cfg.Listen,
		protocols: strings.Join(sharedProtocols(cfg), ", "),
		listeners: describeListeners(cfg),
		tls:       onOff(cfg.TLS.Enabled(), "cert "+cfg.TLS.Cert),
		auth:      cfg.Auth.Mode,
		keys:      describeKeys(cfg),
		storage:   st,
		hooks:     hooks,
		codecs:    codecs,
		cluster:   describeCluster(cfg.Cluster),
		webhooks:  describeWebhooks(cfg.Webhooks),
	}, nil
}

// checkHooks compiles and loads every configured script (a start refuses a script that
// fails), without watching the directory.
func checkHooks(h config.Hooks, log *slog.Logger) (string, error) {
	if !h.Enabled {
		return "off", nil
	}
	h.Watch = false
	rt, err := lua.New(h, lua.Options{Logger: log})
	if err != nil {
		return "", err
	}
	defer rt.Close()
	var names []string
	for _, s := range rt.Status() {
		if s.LastError != "" {
			return "", fmt.Errorf("hooks: %s: %s", s.Name, s.LastError)
		}
		names = append(names, s.Name)
	}
	from := "dir " + h.Dir
	if st, err := os.Stat(h.Dir); err != nil || !st.IsDir() {
		from = "built-in scripts: dir " + h.Dir + " not found"
	}
	return fmt.Sprintf("%s (%s)", strings.Join(names, ", "), from), nil
}

// checkStorage starts the storage plugin, which opens its store, and stops it. A cluster
// needs a plugin that declares its store shared, as at start.
func checkStorage(s config.Storage, cluster bool, log *slog.Logger) (string, error) {
	s = s.Resolved()
	var what string
	switch s.Plugin {
	case config.StorageNone:
		return "none (persistence off: no offline delivery, history or recall)", nil
	case config.StorageBolt:
		what = "bolt, dir " + s.Dir
	case config.StorageMongo:
		what = "mongo, database " + s.Mongo.Database
	case config.StorageExternal:
		if err := findCommand("storage.command", s.Command); err != nil {
			return "", err
		}
		what = "external " + strings.Join(s.Command, " ")
	default:
		what = s.Plugin
	}
	sup, err := store.Start(context.Background(), store.Options{Storage: s, Logger: log})
	if err != nil {
		return "", err
	}
	shared := sup.Shared()
	sup.Stop()
	if cluster && !shared {
		return "", fmt.Errorf("cluster: storage plugin %s does not declare its store shared: a cluster needs storage that every node shares", s.Plugin)
	}
	return what + " (opened)", nil
}

// checkCodecs starts every codec plugin, which handshakes, and stops them.
func checkCodecs(cfg *config.Config, log *slog.Logger) (string, error) {
	if len(cfg.Codecs.Plugins) == 0 {
		return "none", nil
	}
	var out []string
	for i, p := range cfg.Codecs.Plugins {
		if p.Path != "" {
			if err := findCommand(fmt.Sprintf("codecs.plugins[%d].path", i), []string{p.Path}); err != nil {
				return "", err
			}
		}
		what := p.Name + " (path " + p.Path
		if p.Builtin != "" {
			what = p.Name + " (builtin " + p.Builtin
		}
		if len(p.Listen) > 0 {
			what += ", listen " + strings.Join(p.Listen, " ")
		}
		out = append(out, what+")")
	}
	m, err := codecplugin.Start(cfg.Codecs, codecplugin.Options{Logger: log, MaxFrame: cfg.Limits.MaxFrameBytes})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		return "", fmt.Errorf("codecs: stop: %w", err)
	}
	return strings.Join(out, "; ") + " (handshaken)", nil
}

// findCommand reports a plugin executable that does not exist or cannot run, before the
// plugin host would retry starting it until its start timeout.
func findCommand(key string, cmd []string) error {
	if len(cmd) == 0 || cmd[0] == "" {
		return fmt.Errorf("%s: empty", key)
	}
	if _, err := exec.LookPath(cmd[0]); err != nil {
		return fmt.Errorf("%s: plugin command: %w", key, err)
	}
	return nil
}

// sharedProtocols are the protocols recognised on the shared port.
func sharedProtocols(cfg *config.Config) []string {
	protos := []string{"tcp", "ws", "http"}
	if cfg.TLS.Enabled() {
		protos = append(protos, "tls+tcp", "wss", "https")
	}
	for _, p := range cfg.Codecs.Plugins {
		if p.OnSharedPort() {
			protos = append(protos, p.Name)
		}
	}
	return protos
}

func describeListeners(cfg *config.Config) string {
	var out []string
	for _, l := range cfg.Listeners {
		out = append(out, l.Protocol+" "+l.Address)
	}
	for _, p := range cfg.Codecs.Plugins {
		for _, a := range p.Listen {
			out = append(out, p.Name+" "+a)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// describeKeys counts the API and admin keys and names the development ones.
func describeKeys(cfg *config.Config) string {
	out := fmt.Sprintf("%d API, %d admin", len(cfg.API.Keys), len(cfg.Admin.Keys))
	var dev []string
	for _, k := range append(slices.Clone(cfg.API.Keys), cfg.Admin.Keys...) {
		if k == "dev-api-key" || k == "dev-admin-key" {
			dev = append(dev, k)
		}
	}
	if len(dev) > 0 {
		out += " (development keys " + strings.Join(dev, ", ") + ": set TIMGW_API_KEY and TIMGW_ADMIN_KEY)"
	}
	return out
}

func describeCluster(c config.Cluster) string {
	if !c.Enabled {
		return "off"
	}
	bus := "embedded NATS"
	if len(c.NATS.URLs) > 0 {
		bus = "NATS " + strings.Join(c.NATS.URLs, ",")
	}
	return fmt.Sprintf("node %s over %s (not joined by check)", c.NodeID, bus)
}

func onOff(on bool, what string) string {
	if on {
		return what
	}
	return "off"
}

func (s *checkSummary) print(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"config", s.config}, {"listen", s.listen}, {"protocols", s.protocols}, {"listeners", s.listeners},
		{"tls", s.tls}, {"auth", s.auth}, {"keys", s.keys}, {"storage", s.storage}, {"hooks", s.hooks},
		{"codecs", s.codecs}, {"cluster", s.cluster}, {"webhooks", s.webhooks},
	} {
		fmt.Fprintf(w, "%s\t%s\n", row[0], row[1])
	}
	fmt.Fprintln(w, "configuration ok")
	return w.Flush()
}

// describeWebhooks says where events go: each endpoint's URL (without its query, which
// may hold a token), its event types, and whether it is signed.
func describeWebhooks(w config.Webhooks) string {
	if len(w.Endpoints) == 0 {
		return "off"
	}
	parts := make([]string, 0, len(w.Endpoints))
	for _, e := range w.Endpoints {
		u := e.URL
		if i := strings.IndexAny(u, "?#"); i >= 0 {
			u = u[:i]
		}
		events := "all events"
		if len(e.Events) > 0 {
			events = strings.Join(e.Events, ",")
		}
		signed := "signed"
		if e.Secret == "" {
			signed = "unsigned"
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %s)", u, events, signed))
	}
	return strings.Join(parts, "; ")
}
