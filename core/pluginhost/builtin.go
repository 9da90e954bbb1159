package pluginhost

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
)

// Arg is the hidden sub-command that makes the timgw executable run one of its built-in
// plugins instead of the gateway: `timgw __plugin storage bolt`, `timgw __plugin codec
// codec-mqtt`. The hosts start built-in plugins that way (Command).
const Arg = "__plugin"

// Plugin kinds: the SDK a plugin speaks.
const (
	Storage = "storage" // plugins/storage
	Codec   = "codec"   // plugins/codec
)

// Builtin is a plugin compiled into the binary.
type Builtin struct {
	Kind string // Storage or Codec
	Name string // as the configuration names it (storage.plugin, codecs.plugins[].builtin)
	// Main serves the plugin (it calls its SDK's Serve) until the host goes away.
	Main func()
}

var (
	regMu    sync.Mutex
	registry = map[string]map[string]func(){}
)

// Register adds built-in plugins; a later registration of the same kind and name
// replaces the earlier one. cmd/timgw registers its list at init; tests that start
// plugins from their own test binary register what they need in TestMain.
func Register(bs ...Builtin) {
	regMu.Lock()
	defer regMu.Unlock()
	for _, b := range bs {
		if registry[b.Kind] == nil {
			registry[b.Kind] = map[string]func(){}
		}
		registry[b.Kind][b.Name] = b.Main
	}
}

// Registered reports whether a built-in plugin kind/name is compiled in.
func Registered(kind, name string) bool { return lookup(kind, name) != nil }

func lookup(kind, name string) func() {
	regMu.Lock()
	defer regMu.Unlock()
	return registry[kind][name]
}

// Names lists the built-in plugins of a kind, sorted.
func Names(kind string) []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(registry[kind]))
	for n := range registry[kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Command is the command line that runs built-in plugin kind/name from executable exe
// (the timgw binary), with extra arguments. It is not tied yet (Tie).
func Command(exe, kind, name string, args ...string) *exec.Cmd {
	return exec.Command(exe, append([]string{Arg, kind, name}, args...)...)
}

// Run runs the built-in plugin args ask for, when args (a process's arguments without
// the program name) start with Arg, and reports true when they did (the caller then
// exits, with status 2 on an error). An unknown plugin is an error naming the ones
// compiled in.
func Run(args []string) (bool, error) {
	if len(args) == 0 || args[0] != Arg {
		return false, nil
	}
	if len(args) < 3 {
		return true, fmt.Errorf("%s needs a kind and a name: %s KIND NAME", Arg, Arg)
	}
	kind, name := args[1], args[2]
	main := lookup(kind, name)
	if main == nil {
		return true, fmt.Errorf("no built-in %s plugin %q in this binary (built in: %v)", kind, name, Names(kind))
	}
	main()
	return true, nil
}

// Main is the one entry point of binaries with built-in plugins (timgw, and test
// binaries that double as plugins): when os.Args ask for a plugin, it runs it and exits;
// otherwise it returns.
func Main() {
	ran, err := Run(os.Args[1:])
	if !ran {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "timgw:", err)
		os.Exit(2)
	}
	os.Exit(0)
}
