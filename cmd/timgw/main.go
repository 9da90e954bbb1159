// Command timgw runs the timgw instant-messaging gateway.
//
//	timgw [-config conf/timgw.yaml] [-listen :8888]
//
// With no -config and no conf/timgw.yaml, it runs with the embedded default
// configuration.
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
	if err := fl.Parse(args); err != nil {
		return err
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
	log.Info("timgw ready", "addr", a.Addr().String())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var s os.Signal
	for s = range sig {
		if s != syscall.SIGHUP {
			break
		}
		a.ReloadFromSource("signal")
	}
	log.Info("shutting down", "signal", s.String())
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
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
