package transport

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// TestLibLogger: every method of the gnet and ants logger writes one slog record at the
// level the library meant (gnet's info lines at debug), tagged with the component, with
// the formatted message and no trailing newline.
func TestLibLogger(t *testing.T) {
	cases := []struct {
		name  string
		log   func(libLogger)
		level string
		msg   string
	}{
		{"gnet debug", func(l libLogger) { l.Debugf("d %d", 1) }, "DEBUG", "d 1"},
		{"gnet info", func(l libLogger) { l.Infof("i %d", 2) }, "DEBUG", "i 2"},
		{"gnet warn", func(l libLogger) { l.Warnf("w %d", 3) }, "WARN", "w 3"},
		{"gnet error", func(l libLogger) { l.Errorf("e %d", 4) }, "ERROR", "e 4"},
		{"gnet fatal", func(l libLogger) { l.Fatalf("f %d", 5) }, "ERROR", "f 5"},
		{"ants panic", func(l libLogger) { l.Printf("worker exits from panic: %v\n%s\n", "x", "stack") }, "ERROR",
			"worker exits from panic: x\nstack"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := newLibLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "lib")
			tc.log(l)
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("not one JSON record: %v: %q", err, buf.String())
			}
			if rec["level"] != tc.level || rec["component"] != "lib" || rec["msg"] != tc.msg {
				t.Errorf("record %v: want level %s, component lib, msg %q", rec, tc.level, tc.msg)
			}
		})
	}
}

// TestLibLoggerLevel: lines below the handler's level are dropped.
func TestLibLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	l := newLibLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "gnet")
	l.Infof("launching")
	if buf.Len() != 0 {
		t.Errorf("gnet info line logged at info level: %s", buf.String())
	}
}
