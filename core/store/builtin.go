package store

import (
	"fmt"
	"os"

	"github.com/timgw/timgw/core/config"
	storagebolt "github.com/timgw/timgw/plugins/storage-bolt"
	storagemongo "github.com/timgw/timgw/plugins/storage-mongo"
)

// BuiltinArg is the hidden first argument that makes the timgw executable run a built-in
// storage plugin instead of the gateway: `timgw __storage-plugin bolt`.
const BuiltinArg = "__storage-plugin"

// RunBuiltin runs the built-in plugin called name (bolt or mongo) until the host goes
// away, and returns the process's exit code. cmd/timgw calls it when its first argument
// is BuiltinArg; so do tests that start plugins from their own test binary.
func RunBuiltin(name string) int {
	switch name {
	case config.StorageBolt:
		storagebolt.Main()
	case config.StorageMongo:
		storagemongo.Main()
	default:
		fmt.Fprintf(os.Stderr, "timgw: no built-in storage plugin %q (bolt, mongo)\n", name)
		return 2
	}
	return 0
}

// MaybeRunBuiltin runs a built-in plugin and exits when args (os.Args) ask for one;
// otherwise it returns.
func MaybeRunBuiltin(args []string) {
	if len(args) >= 3 && args[1] == BuiltinArg {
		os.Exit(RunBuiltin(args[2]))
	}
}
