package main

import (
	"runtime/debug"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	tests := []struct {
		name string
		set  string
		bi   *debug.BuildInfo
		want string
	}{
		{"set with ldflags wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v1.2.3"},
		{"module version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v0.9.0"},
		{"vcs revision", "", vcs("vcs.revision", "0123456789abcdef0123", "vcs.modified", "false"), "devel-0123456789ab"},
		{"vcs revision, local changes", "", vcs("vcs.revision", "0123456789abcdef", "vcs.modified", "true"), "devel-0123456789ab-dirty"},
		{"short revision", "", vcs("vcs.revision", "abc"), "devel-abc"},
		{"nothing known", "", vcs(), "devel"},
		{"no build info", "", nil, "devel"},
	}
	for _, tt := range tests {
		if got := resolveVersion(tt.set, tt.bi); got != tt.want {
			t.Errorf("%s: resolveVersion = %q, want %q", tt.name, got, tt.want)
		}
	}
}
