package store

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogger forwards go-plugin's logging (its own, and the plugin's stderr lines, which it
// parses) to slog.
type hclogger struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*hclogger)(nil)

func level(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug, hclog.NoLevel:
		return slog.LevelDebug
	case hclog.Info:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (h *hclogger) Log(l hclog.Level, msg string, args ...any) {
	if l == hclog.Off || !h.l.Enabled(context.Background(), level(l)) {
		return
	}
	all := append(append([]any{}, h.args...), args...)
	if h.name != "" {
		all = append(all, "logger", h.name)
	}
	h.l.Log(context.Background(), level(l), msg, all...)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) on(l slog.Level) bool { return h.l.Enabled(context.Background(), l) }

func (h *hclogger) IsTrace() bool { return h.on(slog.LevelDebug) }
func (h *hclogger) IsDebug() bool { return h.on(slog.LevelDebug) }
func (h *hclogger) IsInfo() bool  { return h.on(slog.LevelInfo) }
func (h *hclogger) IsWarn() bool  { return h.on(slog.LevelWarn) }
func (h *hclogger) IsError() bool { return h.on(slog.LevelError) }

func (h *hclogger) ImpliedArgs() []any { return h.args }

func (h *hclogger) With(args ...any) hclog.Logger {
	return &hclogger{l: h.l, name: h.name, args: append(append([]any{}, h.args...), args...)}
}

func (h *hclogger) Name() string { return h.name }

func (h *hclogger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return &hclogger{l: h.l, name: name, args: h.args}
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	return &hclogger{l: h.l, name: name, args: h.args}
}

func (h *hclogger) SetLevel(hclog.Level) {}

func (h *hclogger) GetLevel() hclog.Level {
	switch {
	case h.on(slog.LevelDebug):
		return hclog.Debug
	case h.on(slog.LevelInfo):
		return hclog.Info
	case h.on(slog.LevelWarn):
		return hclog.Warn
	}
	return hclog.Error
}

func (h *hclogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

func (h *hclogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}
