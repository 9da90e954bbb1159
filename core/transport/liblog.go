package transport

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/panjf2000/ants/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// libLogger hands the log lines of the libraries the transport runs on to slog, so that
// every line the gateway writes has the configured log.format (without it, gnet writes
// its own text format to stdout and ants to stderr). Each line carries
// component=gnet or component=ants.
type libLogger struct {
	l *slog.Logger
}

// newLibLogger returns the logger of library component (gnet, ants).
func newLibLogger(l *slog.Logger, component string) libLogger {
	return libLogger{l: l.With("component", component)}
}

var (
	_ logging.Logger = libLogger{}
	_ ants.Logger    = libLogger{}
)

func (g libLogger) logf(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !g.l.Enabled(ctx, level) {
		return
	}
	g.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// Debugf implements logging.Logger.
func (g libLogger) Debugf(format string, args ...any) { g.logf(slog.LevelDebug, format, args) }

// Infof implements logging.Logger at debug level: gnet's informational lines are about
// its internal loopback listener, not about a port clients use.
func (g libLogger) Infof(format string, args ...any) { g.logf(slog.LevelDebug, format, args) }

// Warnf implements logging.Logger.
func (g libLogger) Warnf(format string, args ...any) { g.logf(slog.LevelWarn, format, args) }

// Errorf implements logging.Logger.
func (g libLogger) Errorf(format string, args ...any) { g.logf(slog.LevelError, format, args) }

// Fatalf implements logging.Logger at error level; it does not exit the process.
func (g libLogger) Fatalf(format string, args ...any) { g.logf(slog.LevelError, format, args) }

// Printf implements ants.Logger at error level: ants logs only the panics of tasks.
func (g libLogger) Printf(format string, args ...any) { g.logf(slog.LevelError, format, args) }
