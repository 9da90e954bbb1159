package config

import (
	"errors"
	"time"
)

// Shutdown configures how the gateway stops on SIGTERM or SIGINT (the `shutdown:`
// section of conf/timgw.yaml): first a drain, during which /health answers 503 while
// every client is still served, then a goodbye to each connection, bounded by
// CloseGrace. Read when the signal arrives, so a reload applies it.
type Shutdown struct {
	// Drain is how long /health answers 503 ("draining") before the listeners close, so
	// that load balancers stop sending new clients first (default 5s; 0: no drain). A
	// second signal ends it at once.
	Drain time.Duration `yaml:"drain"`
	// CloseGrace bounds the goodbye after the drain: each connection is told the server
	// is going away and closed once its chats are answered and it has been quiet for a
	// moment; connections still busy at CloseGrace are closed then (default 5s).
	CloseGrace time.Duration `yaml:"close_grace"`
}

// DefaultShutdown is the shutdown section a file leaves out.
func DefaultShutdown() Shutdown {
	return Shutdown{Drain: 5 * time.Second, CloseGrace: 5 * time.Second}
}

// Validate checks the shutdown section; errors name the full key.
func (s Shutdown) Validate() error {
	var errs []error
	if s.Drain < 0 || s.Drain > 10*time.Minute {
		errs = append(errs, errors.New("shutdown.drain: must be between 0 and 10m"))
	}
	if s.CloseGrace <= 0 || s.CloseGrace > 10*time.Minute {
		errs = append(errs, errors.New("shutdown.close_grace: must be > 0 and at most 10m"))
	}
	return errors.Join(errs...)
}
