package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release this binary is, set when building:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/timgw
//
// Left empty, the version comes from the build information (module version or VCS
// revision).
var version string

// versionString is what `timgw -version` prints after the name.
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return fmt.Sprintf("%s (%s %s/%s)", resolveVersion(version, bi), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// resolveVersion picks the version: the one set at build time, else the main module's
// version, else the VCS revision the binary was built from (with "-dirty" for local
// changes), else "devel".
func resolveVersion(set string, bi *debug.BuildInfo) string {
	if set != "" {
		return set
	}
	if bi == nil {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(12, len(rev))] + dirty
}
