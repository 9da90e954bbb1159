package main

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// module is the gateway's module path; allowed lists the packages of it a plugin may
// import (each with its subpackages): the codec SDK, which a plugin built out of tree
// gets as a module of its own, and this plugin.
const module = "github.com/timgw/timgw"

var allowed = []string{module + "/plugins/codec", module + "/plugins/codec-mqtt"}

// gatewayDeps returns the packages of `go list -deps -test` output (one a line, a test
// variant followed by " [its test]") that belong to the gateway's module but are
// neither the SDK nor this plugin.
func gatewayDeps(list string) []string {
	var bad []string
	for line := range strings.Lines(list) {
		pkg, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pkg = strings.TrimSuffix(pkg, ".test")
		if pkg != module && !strings.HasPrefix(pkg, module+"/") {
			continue
		}
		ok := false
		for _, a := range allowed {
			if pkg == a || strings.HasPrefix(pkg, a+"/") {
				ok = true
			}
		}
		if !ok {
			bad = append(bad, pkg)
		}
	}
	return bad
}

func TestGatewayDeps(t *testing.T) {
	tests := []struct {
		name, list string
		want       []string
	}{
		{"sdk and plugin", "fmt\n" + module + "/plugins/codec\n" + module + "/plugins/codec/codectest\n" +
			module + "/plugins/codec-mqtt/mqtt [" + module + "/plugins/codec-mqtt/mqtt.test]\n" + module + "/plugins/codec-mqtt/mqtt.test\n", nil},
		{"core", module + "/plugins/codec\n" + module + "/core/packet\n", []string{module + "/core/packet"}},
		{"core in a test", module + "/core/packet [" + module + "/plugins/codec-mqtt/mqtt.test]\n", []string{module + "/core/packet"}},
		{"module root", module + "\n", []string{module}},
		{"another plugin", module + "/plugins/codec-line\n" + module + "/plugins/codecx\n",
			[]string{module + "/plugins/codec-line", module + "/plugins/codecx"}},
		{"other modules", "github.com/timgw/timgwx/core\ngithub.com/tidwall/gjson\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gatewayDeps(tt.list); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("gatewayDeps = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOnlySDKDeps: the plugin (its command, its package, the bench, and their tests)
// imports nothing of the gateway but the codec SDK, as a plugin built out of tree must
// (integration/outoftree_test.go builds one).
func TestOnlySDKDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps -test ./...: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), module+"/plugins/codec-mqtt/mqtt\n") {
		t.Fatalf("go list -deps -test ./... did not list the plugin's package:\n%s", out)
	}
	if bad := gatewayDeps(string(out)); len(bad) > 0 {
		t.Fatalf("the MQTT plugin depends on the gateway's packages %q; use the codec SDK (github.com/timgw/timgw/plugins/codec) instead", bad)
	}
}
