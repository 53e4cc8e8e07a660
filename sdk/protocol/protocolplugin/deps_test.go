package protocolplugin_test

import (
	"os/exec"
	"strings"
	"testing"
)

// deps returns the packages pkgs depend on, as go list -deps prints them.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// TestStaysLight: a protocol plugin pulls in none of the core's heavy
// dependencies, and the contract alone (package protocol) not even gRPC.
func TestStaysLight(t *testing.T) {
	for _, d := range deps(t, ".") {
		for _, heavy := range []string{"github.com/tetratelabs/wazero", "modernc.org/sqlite", "github.com/pganalyze/pg_query_go", "github.com/gatewayd-access/gatewayd/core"} {
			if strings.HasPrefix(d, heavy) {
				t.Errorf("protocolplugin depends on %s", d)
			}
		}
	}
	for _, d := range deps(t, "..") {
		if strings.HasPrefix(d, "google.golang.org/") || strings.HasPrefix(d, "github.com/hashicorp/") {
			t.Errorf("package protocol depends on %s", d)
		}
	}
}
