// Command timgw runs the timgw instant-messaging gateway.
//
//	timgw [-config conf/timgw.yaml] [-listen :8888]
//	timgw -version
//	timgw health [ADDR]
//	timgw script-test [-v] PATH...
//	timgw check -config FILE
//
// With no -config and no conf/timgw.yaml, it runs with the embedded default
// configuration. SIGTERM and SIGINT stop it gracefully (a drain, then a goodbye to every
// client; shutdown.* in the configuration); SIGHUP reloads the configuration. `timgw
// health` checks a running gateway's /health, for container health checks (health.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/timgw/timgw/conf"
	"github.com/timgw/timgw/core/app"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/confwatch"
	"github.com/timgw/timgw/core/pluginhost"
)

const defaultConfig = "conf/timgw.yaml"

func main() {
	pluginhost.Main() // `timgw __plugin KIND NAME`: a built-in plugin (plugins.go)
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "script-test" {
		os.Exit(scriptTest(os.Args[2:], os.Stdout, os.Stderr))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "timgw:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "check" {
		return runCheck(args[1:], os.Stdout)
	}
	fl := flag.NewFlagSet("timgw", flag.ContinueOnError)
	cfgPath := fl.String("config", defaultConfig, "configuration file (YAML)")
	listen := fl.String("listen", "", "address of the shared port, overriding the config's listen")
	showVersion := fl.Bool("version", false, "print the version and exit")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println("timgw", versionString())
		return nil
	}
	explicit := false
	fl.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })

	cfg, source, err := loadConfig(*cfgPath, explicit)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, level)
	slog.SetDefault(log)
	log.Info("starting timgw", "config", source, "listen", cfg.Listen, "auth", cfg.Auth.Mode)

	a, err := app.Start(cfg, log)
	if err != nil {
		return err
	}
	a.SetLevelVar(level)
	reread := func() (*config.Config, error) {
		c, _, err := loadConfig(*cfgPath, explicit)
		if err == nil && *listen != "" {
			c.Listen = *listen
		}
		return c, err
	}
	a.SetSource(reread)
	ctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if source == *cfgPath {
		if err := confwatch.Watch(ctx, *cfgPath, 150*time.Millisecond, log, func() { a.ReloadFromSource("file") }); err != nil {
			log.Warn("config file changes will not be picked up", "err", err)
		}
	}
	// Listen for signals before saying ready: a SIGTERM right after must stop gracefully.
	sig := make(chan os.Signal, 4) // room for a second signal that ends the drain
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	log.Info("timgw ready", "addr", a.Addr().String())
	var s os.Signal
	for s = range sig {
		if s != syscall.SIGHUP {
			break
		}
		a.ReloadFromSource("signal")
	}
	log.Info("shutting down", "signal", s.String())
	sh := a.ShutdownSettings()
	if sh.Drain > 0 {
		a.BeginDrain()
		log.Info("draining: /health answers 503 while clients are still served", "drain", sh.Drain)
		drain(sh.Drain, sig, log)
	}
	sctx, cancel := context.WithTimeout(context.Background(), sh.CloseGrace+stopBudget)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// stopBudget bounds the shutdown after the goodbye (shutdown.close_grace): the HTTP
// server, the plugins and storage stopping. With the drain, a shutdown takes at most
// shutdown.drain + shutdown.close_grace + stopBudget.
const stopBudget = 15 * time.Second

// drain waits d, or until another SIGTERM or SIGINT ends the drain early.
func drain(d time.Duration, sig <-chan os.Signal, log *slog.Logger) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case s := <-sig:
			if s == syscall.SIGHUP {
				continue // no reloads while stopping
			}
			log.Info("drain cut short", "signal", s.String())
			return
		}
	}
}

// loadConfig reads the config file; the default path may be missing, and then the
// embedded defaults apply.
func loadConfig(path string, explicit bool) (*config.Config, string, error) {
	cfg, err := config.Load(path)
	if err == nil {
		return cfg, path, nil
	}
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		cfg, err = config.Parse(conf.Default)
		return cfg, "embedded defaults", err
	}
	return nil, "", err
}

func newLogger(c config.Log, lvl *slog.LevelVar) *slog.Logger {
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
