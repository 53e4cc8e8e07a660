package ssh_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/gatewayd-access/gatewayd/internal/plugintest"
)

// The integration tests run the handler in one of two ways, and assert the
// same things either way:
//
//	go test ./plugins/protocols/ssh/                              built in
//	GATEWAYD_TEST_SSH_PLUGIN=1 go test ./plugins/protocols/ssh/   the external plugin
//
// In the second mode every gateway the tests start serves its SSH listener
// through cmd/gatewayd-ssh, named by [listen.ssh] plugin and launched by
// gatewayd's plugin host from gateway.toml. "1" builds the binary from this
// tree; any other value is the path of a built one.
var pluginBinary = plugintest.Binary{
	Env:  "GATEWAYD_TEST_SSH_PLUGIN",
	Pkg:  "github.com/gatewayd-access/gatewayd/cmd/gatewayd-ssh",
	Name: "gatewayd-ssh",
}

// pluginConfig is what a test gateway's configuration gains in the
// external mode: the listener's plugin key and the [[plugin]] table.
func pluginConfig(t testing.TB) (listenerKey, table string) {
	t.Helper()
	if !pluginBinary.Enabled() {
		return "", ""
	}
	path, sum, err := pluginBinary.Get()
	if err != nil {
		t.Fatal(err)
	}
	return `plugin = "ssh-external"`, fmt.Sprintf(`
[[plugin]]
name = "ssh-external"
kind = "protocol"
path = %q
sha256 = %q
`, path, sum)
}

func TestMain(m *testing.M) {
	code := m.Run()
	pluginBinary.Cleanup()
	os.Exit(code)
}
