package config

import (
	"strings"
	"testing"
)

func TestHooksStringLimits(t *testing.T) {
	for _, tt := range []struct {
		name      string
		str, call int
		wantErr   string
	}{
		{"defaults", 1 << 20, 16 << 20, ""},
		{"zero means default", 0, 0, ""},
		{"string too small", 100, 0, "hooks.max_string_bytes: 100 must be between 1024"},
		{"string too large", 1 << 30, 1 << 30, "hooks.max_string_bytes"},
		{"call below string", 1 << 20, 4096, "hooks.max_call_bytes: 4096 must be between max_string_bytes"},
		{"call too large", 1 << 20, 2 << 30, "hooks.max_call_bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := DefaultHooks()
			h.MaxStringBytes, h.MaxCallBytes = tt.str, tt.call
			err := h.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
