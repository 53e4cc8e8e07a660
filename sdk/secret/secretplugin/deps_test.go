package secretplugin

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

// TestStaysLight: what a secret plugin author imports pulls in neither the
// core's heavy dependencies nor, for the contract alone, gRPC.
func TestStaysLight(t *testing.T) {
	for _, d := range deps(t, ".", "../../plugin") {
		for _, heavy := range []string{"github.com/tetratelabs/wazero", "modernc.org/sqlite", "github.com/pganalyze/pg_query_go", "github.com/gatewayd-access/gatewayd/core"} {
			if strings.HasPrefix(d, heavy) {
				t.Errorf("secretplugin depends on %s", d)
			}
		}
	}
	for _, d := range deps(t, "..") {
		if strings.HasPrefix(d, "google.golang.org/grpc") || strings.HasPrefix(d, "github.com/hashicorp/") {
			t.Errorf("package secret depends on %s", d)
		}
	}
}
