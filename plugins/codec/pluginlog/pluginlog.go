// Package pluginlog bridges go-plugin's logging (hclog) and log/slog, for both sides of
// timgw's plugins: Hclog on the host, Plugin in the plugin process.
package pluginlog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// adapter forwards go-plugin's logging (its own, and the plugin's stderr lines,
// which it parses) to a slog.Logger.
type adapter struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*adapter)(nil)

// Hclog returns an hclog.Logger writing to l: give it to go-plugin (ClientConfig.Logger)
// so that its own log and the plugin's stderr lines land in the gateway's slog log.
func Hclog(l *slog.Logger) hclog.Logger { return &adapter{l: l} }

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug, hclog.NoLevel:
		return slog.LevelDebug
	case hclog.Info:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (a *adapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lv := slogLevel(level)
	if !a.l.Enabled(context.Background(), lv) {
		return
	}
	if a.name != "" {
		args = append(args, "source", a.name)
	}
	a.l.Log(context.Background(), lv, msg, append(append([]any(nil), a.args...), args...)...)
}

func (a *adapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *adapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *adapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *adapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *adapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *adapter) enabled(l slog.Level) bool { return a.l.Enabled(context.Background(), l) }

func (a *adapter) IsTrace() bool { return a.enabled(slog.LevelDebug) }
func (a *adapter) IsDebug() bool { return a.enabled(slog.LevelDebug) }
func (a *adapter) IsInfo() bool  { return a.enabled(slog.LevelInfo) }
func (a *adapter) IsWarn() bool  { return a.enabled(slog.LevelWarn) }
func (a *adapter) IsError() bool { return a.enabled(slog.LevelError) }

func (a *adapter) ImpliedArgs() []any { return a.args }

func (a *adapter) With(args ...any) hclog.Logger {
	return &adapter{l: a.l, name: a.name, args: append(append([]any(nil), a.args...), args...)}
}

func (a *adapter) Name() string { return a.name }

func (a *adapter) Named(name string) hclog.Logger {
	n := name
	if a.name != "" {
		n = a.name + "." + name
	}
	return &adapter{l: a.l, name: n, args: a.args}
}

func (a *adapter) ResetNamed(name string) hclog.Logger {
	return &adapter{l: a.l, name: name, args: a.args}
}

func (a *adapter) SetLevel(hclog.Level) {}

func (a *adapter) GetLevel() hclog.Level {
	switch {
	case a.enabled(slog.LevelDebug):
		return hclog.Debug
	case a.enabled(slog.LevelInfo):
		return hclog.Info
	case a.enabled(slog.LevelWarn):
		return hclog.Warn
	}
	return hclog.Error
}

func (a *adapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}

func (a *adapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(nil).Writer()
}

// Plugin returns the logger a plugin should use: JSON lines on stderr in the shape
// go-plugin parses ("@level", "@message"), so that the host logs them at their level
// with the plugin's name. The SDKs' Serve install it as slog's default.
func Plugin() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{Key: "@timestamp", Value: slog.StringValue(a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))}
			case slog.LevelKey:
				return slog.Attr{Key: "@level", Value: slog.StringValue(strings.ToLower(a.Value.String()))}
			case slog.MessageKey:
				return slog.Attr{Key: "@message", Value: a.Value}
			}
			return a
		},
	}))
}
