package codecplugin

import (
	"fmt"
	"sort"
	"sync"
)

// BuiltinArg is the hidden first argument that makes a binary with registered
// built-in plugins run one of them instead of its usual main: `timgw __timgw-codec-plugin
// codec-mqtt`. The Manager starts built-in plugins that way, from its own executable.
const BuiltinArg = "__timgw-codec-plugin"

var (
	builtinMu sync.Mutex
	builtins  = map[string]func(){}
)

// RegisterBuiltin registers a plugin compiled into this binary; serve runs it (it
// calls the SDK's Serve). Call it from an init function.
func RegisterBuiltin(name string, serve func()) {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	builtins[name] = serve
}

// Builtins lists the registered built-in plugins.
func Builtins() []string {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func isBuiltin(name string) bool {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	_, ok := builtins[name]
	return ok
}

// RunBuiltin runs the built-in plugin args name when args (a process's arguments
// without the program name) start with BuiltinArg, and reports true when it did (the
// caller then exits). An unknown name is an error.
func RunBuiltin(args []string) (bool, error) {
	if len(args) == 0 || args[0] != BuiltinArg {
		return false, nil
	}
	if len(args) < 2 {
		return true, fmt.Errorf("%s needs a plugin name (builtins: %v)", BuiltinArg, Builtins())
	}
	builtinMu.Lock()
	serve := builtins[args[1]]
	builtinMu.Unlock()
	if serve == nil {
		return true, fmt.Errorf("builtin codec plugin %q is not compiled into this binary (builtins: %v)", args[1], Builtins())
	}
	serve()
	return true, nil
}
