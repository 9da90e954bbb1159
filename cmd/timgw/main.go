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
)

const defaultConfig = "conf/timgw.yaml"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "timgw:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
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
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	log.Info("starting timgw", "config", source, "listen", cfg.Listen, "auth", cfg.Auth.Mode)

	a, err := app.Start(cfg, log)
	if err != nil {
		return err
	}
	log.Info("timgw ready", "addr", a.Addr().String())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
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

func newLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
