// Command ferretdb runs FerretDB v1 (the MongoDB wire protocol over PostgreSQL or SQLite)
// for CI: the MongoDB storage plugin's tests talk to it over TCP. It is a tiny main around
// the embeddable package github.com/FerretDB/FerretDB/ferretdb, because `go install` of
// FerretDB's own command builds a binary that panics at start (version.txt is missing from
// the module download). It lives in a module of its own so that FerretDB's dependency tree
// stays out of timgw's go.mod.
//
//	ferretdb -listen 127.0.0.1:27018 -postgresql postgres://user@127.0.0.1:5433/ferretdb
//	ferretdb -listen 127.0.0.1:27018 -sqlite file:/tmp/ferret/
//
// It runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to serve the MongoDB wire protocol on")
	pg := flag.String("postgresql", "", "PostgreSQL URL (PostgreSQL backend)")
	sqlite := flag.String("sqlite", "", "SQLite directory URI such as file:/tmp/ferret/ (SQLite backend)")
	level := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	cfg := &ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: *listen}, Logger: log}
	switch {
	case *pg != "" && *sqlite == "":
		cfg.Handler, cfg.PostgreSQLURL = "postgresql", *pg
	case *sqlite != "" && *pg == "":
		cfg.Handler, cfg.SQLiteURL = "sqlite", *sqlite
	default:
		fmt.Fprintln(os.Stderr, "ferretdb: give exactly one of -postgresql and -sqlite")
		os.Exit(2)
	}
	f, err := ferretdb.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Warn("ferretdb serving", "listen", *listen, "backend", cfg.Handler)
	if err := f.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}
