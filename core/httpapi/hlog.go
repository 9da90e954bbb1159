package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/cloudwego/hertz/pkg/common/hlog"
)

// SetHertzLogger routes hertz's own log (hlog: start-up lines, connection errors) to l,
// with the attribute component=hertz. hlog is process-wide and not safe to change while
// a hertz server runs: call this once at start-up, before any Serve. Without it, hertz
// writes to stderr in its own format.
//
// Hertz's Fatal calls are logged at error level and do not exit the process.
func SetHertzLogger(l *slog.Logger) {
	hlog.SetLogger(&hlogAdapter{l: l.With("component", "hertz")})
}

// hlogAdapter implements hlog.FullLogger on a slog.Logger.
type hlogAdapter struct {
	l *slog.Logger
}

var hlogLevels = [...]slog.Level{
	hlog.LevelTrace:  slog.LevelDebug - 4,
	hlog.LevelDebug:  slog.LevelDebug,
	hlog.LevelInfo:   slog.LevelInfo,
	hlog.LevelNotice: slog.LevelInfo + 2,
	hlog.LevelWarn:   slog.LevelWarn,
	hlog.LevelError:  slog.LevelError,
	hlog.LevelFatal:  slog.LevelError + 4,
}

func (a *hlogAdapter) log(ctx context.Context, lv hlog.Level, msg string) {
	level := slog.LevelInfo
	if lv >= 0 && int(lv) < len(hlogLevels) {
		level = hlogLevels[lv]
	}
	if !a.l.Enabled(ctx, level) {
		return
	}
	msg = strings.TrimSpace(strings.TrimPrefix(msg, "HERTZ: "))
	a.l.Log(ctx, level, msg)
}

func (a *hlogAdapter) logv(lv hlog.Level, v []any) {
	a.log(context.Background(), lv, fmt.Sprint(v...))
}

func (a *hlogAdapter) logf(ctx context.Context, lv hlog.Level, format string, v []any) {
	a.log(ctx, lv, fmt.Sprintf(format, v...))
}

func (a *hlogAdapter) Trace(v ...any)  { a.logv(hlog.LevelTrace, v) }
func (a *hlogAdapter) Debug(v ...any)  { a.logv(hlog.LevelDebug, v) }
func (a *hlogAdapter) Info(v ...any)   { a.logv(hlog.LevelInfo, v) }
func (a *hlogAdapter) Notice(v ...any) { a.logv(hlog.LevelNotice, v) }
func (a *hlogAdapter) Warn(v ...any)   { a.logv(hlog.LevelWarn, v) }
func (a *hlogAdapter) Error(v ...any)  { a.logv(hlog.LevelError, v) }
func (a *hlogAdapter) Fatal(v ...any)  { a.logv(hlog.LevelFatal, v) }

func (a *hlogAdapter) Tracef(f string, v ...any) { a.logf(context.Background(), hlog.LevelTrace, f, v) }
func (a *hlogAdapter) Debugf(f string, v ...any) { a.logf(context.Background(), hlog.LevelDebug, f, v) }
func (a *hlogAdapter) Infof(f string, v ...any)  { a.logf(context.Background(), hlog.LevelInfo, f, v) }
func (a *hlogAdapter) Noticef(f string, v ...any) {
	a.logf(context.Background(), hlog.LevelNotice, f, v)
}
func (a *hlogAdapter) Warnf(f string, v ...any)  { a.logf(context.Background(), hlog.LevelWarn, f, v) }
func (a *hlogAdapter) Errorf(f string, v ...any) { a.logf(context.Background(), hlog.LevelError, f, v) }
func (a *hlogAdapter) Fatalf(f string, v ...any) { a.logf(context.Background(), hlog.LevelFatal, f, v) }

func (a *hlogAdapter) CtxTracef(ctx context.Context, f string, v ...any) {
	a.logf(ctx, hlog.LevelTrace, f, v)
}
func (a *hlogAdapter) CtxDebugf(ctx context.Context, f string, v ...any) {
	a.logf(ctx, hlog.LevelDebug, f, v)
}
func (a *hlogAdapter) CtxInfof(ctx context.Context, f string, v ...any) {
	a.logf(ctx, hlog.LevelInfo, f, v)
}
func (a *hlogAdapter) CtxNoticef(ctx context.Context, f string, v ...any) {
	a.logf(ctx, hlog.LevelNotice, f, v)
}
func (a *hlogAdapter) CtxWarnf(ctx context.Context, f string, v ...any) {
	a.logf(ctx, hlog.LevelWarn, f, v)
}
func (a *hlogAdapter) CtxErrorf(ctx context.Context, f string, v ...any) {
	a.logf(ctx, hlog.LevelError, f, v)
}
func (a *hlogAdapter) CtxFatalf(ctx context.Context, f string, v ...any) {
	a.logf(ctx, hlog.LevelFatal, f, v)
}

// SetLevel is a no-op: the slog.Logger's handler decides what is written.
func (a *hlogAdapter) SetLevel(hlog.Level) {}

// SetOutput is a no-op: the slog.Logger's handler decides where logs go.
func (a *hlogAdapter) SetOutput(io.Writer) {}
