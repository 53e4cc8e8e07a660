package ssh_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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
const pluginEnv = "GATEWAYD_TEST_SSH_PLUGIN"

func externalMode() bool {
	v := os.Getenv(pluginEnv)
	return v != "" && v != "0"
}

var pluginBuild struct {
	once sync.Once
	dir  string
	path string
	sum  []byte
	err  error
}

// pluginConfig is what a test gateway's configuration gains in the
// external mode: the listener's plugin key and the [[plugin]] table.
func pluginConfig(t testing.TB) (listenerKey, table string) {
	t.Helper()
	if !externalMode() {
		return "", ""
	}
	b := &pluginBuild
	b.once.Do(func() {
		b.path = os.Getenv(pluginEnv)
		if b.path == "1" {
			if b.dir, b.err = os.MkdirTemp("", "gatewayd-ssh-plugin-"); b.err != nil {
				return
			}
			b.path = filepath.Join(b.dir, "gatewayd-ssh")
			out, err := exec.Command("go", "build", "-o", b.path, "github.com/gatewayd-access/gatewayd/cmd/gatewayd-ssh").CombinedOutput()
			if err != nil {
				b.err = fmt.Errorf("building the plugin: %v\n%s", err, out)
				return
			}
		}
		data, err := os.ReadFile(b.path)
		if err != nil {
			b.err = err
			return
		}
		sum := sha256.Sum256(data)
		b.sum = sum[:]
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return `plugin = "ssh-external"`, fmt.Sprintf(`
[[plugin]]
name = "ssh-external"
kind = "protocol"
path = %q
sha256 = "%x"
`, b.path, b.sum)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pluginBuild.dir != "" {
		_ = os.RemoveAll(pluginBuild.dir)
	}
	os.Exit(code)
}
