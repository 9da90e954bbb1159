package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionValidate(t *testing.T) {
	tests := []struct {
		name string
		r    Retention
		want string // part of the error, "" for none
	}{
		{"defaults keep forever", Retention{}, ""},
		{"periods", Retention{Private: 720 * time.Hour, Group: 2 * time.Second, Interval: 500 * time.Millisecond, Batch: 10}, ""},
		{"negative period", Retention{Private: -time.Second}, ">= 0"},
		{"period under a second", Retention{Group: time.Millisecond}, "under 1s"},
		{"interval too short", Retention{Interval: time.Millisecond}, "interval"},
		{"negative batch", Retention{Batch: -1}, "batch"},
		{"huge batch", Retention{Batch: 1 << 20}, "batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Storage{Retention: tt.r}.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate: %v, want an error naming %q", err, tt.want)
			}
		})
	}
	r := Storage{}.Resolved().Retention
	if r.Interval != time.Minute || r.Batch != 1000 || r.Enabled() {
		t.Errorf("defaults: %+v, want interval 1m, batch 1000, disabled", r)
	}
}
