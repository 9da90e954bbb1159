package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestHlogAdapter(t *testing.T) {
	var buf bytes.Buffer
	a := &hlogAdapter{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	tests := []struct {
		log  func()
		want string // "" : nothing written
	}{
		{func() { a.Infof("HERTZ: listening on %s", "x") }, `level=INFO msg="listening on x"`},
		{func() { a.Warn("slow ", 3) }, `level=WARN msg="slow 3"`},
		{func() { a.CtxErrorf(context.Background(), "bad %d", 1) }, `level=ERROR msg="bad 1"`},
		{func() { a.Fatal("gone") }, `level=ERROR+4 msg=gone`},
		{func() { a.Noticef("n") }, `level=INFO+2 msg=n`},
		{func() { a.Debugf("hidden") }, ""},
		{func() { a.Trace("hidden") }, ""},
	}
	for _, tc := range tests {
		buf.Reset()
		tc.log()
		got := strings.TrimSpace(buf.String())
		if tc.want == "" {
			if got != "" {
				t.Errorf("wrote %q, want nothing", got)
			}
			continue
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("wrote %q, want it to contain %q", got, tc.want)
		}
	}
}
