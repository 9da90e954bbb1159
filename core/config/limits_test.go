package config

import (
	"strings"
	"testing"
	"time"
)

func TestInputTimeouts(t *testing.T) {
	tests := []struct {
		yaml        string
		body, frame time.Duration
		err         string
	}{
		{yaml: "", body: 10 * time.Second, frame: 10 * time.Second},
		{yaml: "limits: {body_timeout: 2s, frame_timeout: 3s}", body: 2 * time.Second, frame: 3 * time.Second},
		{yaml: "limits: {max_connections: 5}", body: 10 * time.Second, frame: 10 * time.Second},
		{yaml: "limits: {body_timeout: 0s}", err: "limits.body_timeout: must be > 0"},
		{yaml: "limits: {frame_timeout: 500ms}", err: "limits.frame_timeout: must be from 1s to 200s"},
		{yaml: "limits: {frame_timeout: 5m}", err: "limits.frame_timeout: must be from 1s to 200s"},
		{yaml: "limits: {pipelined_chats: 0}", err: "limits.pipelined_chats: must be from 1 to 255, got 0"},
		{yaml: "limits: {pipelined_chats: 256}", err: "limits.pipelined_chats: must be from 1 to 255, got 256"},
		{yaml: "limits: {pipelined_chats: 1}", body: 10 * time.Second, frame: 10 * time.Second},
	}
	for _, tc := range tests {
		cfg, err := Parse([]byte(tc.yaml))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if cfg.Limits.BodyTimeout != tc.body || cfg.Limits.FrameTimeout != tc.frame {
			t.Errorf("%q: body_timeout %s frame_timeout %s, want %s %s", tc.yaml,
				cfg.Limits.BodyTimeout, cfg.Limits.FrameTimeout, tc.body, tc.frame)
		}
	}
}
