// Package plugintest builds what the tests of external plugins need: plugin
// binaries with their sha256, the sops CLI (built once into bin/tools and
// reused), age keys and sops-encrypted files.
package plugintest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
)

// SopsVersion is the sops CLI the tests encrypt with; the Makefile's
// SOPS_VERSION and scripts/install-deps.sh build the same one.
const SopsVersion = "v3.13.3"

// Build compiles the main package pkg (an import path, or a path relative to
// the test's directory such as "./testdata/echo") to dir/name and returns
// the executable's path and hex sha256.
func Build(pkg, dir, name string) (path, sum string, err error) {
	path = filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", path, pkg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	sum, err = FileSHA256(path)
	return path, sum, err
}

// Binary is a plugin binary a test package needs at most once: the file
// its environment variable Env names, or, when Env is "1", Pkg built into
// a temporary directory. The integration suites use it to run a handler
// as an external plugin (GATEWAYD_TEST_POSTGRES_PLUGIN=1 and the like).
type Binary struct {
	Env  string // the environment variable
	Pkg  string // the main package's import path
	Name string // the file name of the built binary

	once      sync.Once
	dir       string
	path, sum string
	err       error
}

// Enabled reports whether the environment asks for the plugin.
func (b *Binary) Enabled() bool {
	v := os.Getenv(b.Env)
	return v != "" && v != "0"
}

// Get returns the binary's path and hex sha256, building it on first use.
func (b *Binary) Get() (path, sum string, err error) {
	b.once.Do(func() {
		b.path = os.Getenv(b.Env)
		if b.path == "" || b.path == "1" {
			if b.dir, b.err = os.MkdirTemp("", b.Name+"-plugin-"); b.err != nil {
				return
			}
			b.path, b.sum, b.err = Build(b.Pkg, b.dir, b.Name)
			return
		}
		b.sum, b.err = FileSHA256(b.path)
	})
	return b.path, b.sum, b.err
}

// Cleanup removes a binary Get built; call it from TestMain.
func (b *Binary) Cleanup() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// FileSHA256 returns the hex sha256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RepoRoot returns the root of the gatewayd repository that holds the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/gatewayd-access/gatewayd\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("plugintest: not inside the gatewayd repository")
		}
		dir = parent
	}
}

// SopsCLI returns the path of the sops CLI at SopsVersion in bin/tools,
// building it there with go install the first time (about a minute on two
// cores; `make deps` does it ahead of `make test`). logf tells the developer
// when that happens.
func SopsCLI(logf func(format string, args ...any)) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	tools := filepath.Join(root, "bin", "tools")
	sops := filepath.Join(tools, "sops")
	want := "sops " + strings.TrimPrefix(SopsVersion, "v")
	if sopsVersion(sops) == want {
		return sops, nil
	}
	if err := os.MkdirAll(tools, 0o755); err != nil {
		return "", err
	}
	// Test binaries of several packages may get here at once.
	lock, err := os.OpenFile(filepath.Join(tools, ".sops.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("plugintest: locking bin/tools: %w", err)
	}
	if sopsVersion(sops) == want {
		return sops, nil
	}
	logf("building the sops CLI %s into %s once (about a minute; make deps does it too)", SopsVersion, tools)
	start := time.Now()
	cmd := exec.Command("go", "install", "github.com/getsops/sops/v3/cmd/sops@"+SopsVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+tools)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("plugintest: go install sops@%s: %v\n%s", SopsVersion, err, out)
	}
	if got := sopsVersion(sops); got != want {
		return "", fmt.Errorf("plugintest: built sops says %q, want %q", got, want)
	}
	logf("built the sops CLI in %v", time.Since(start).Round(time.Second))
	return sops, nil
}

// sopsVersion returns the first line of `sops --version`, "" if it fails.
func sopsVersion(path string) string {
	out, err := exec.Command(path, "--version", "--disable-version-check").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// AgeKey generates an age X25519 identity, writes it to path (mode 0600) in
// the format of age-keygen, and returns its recipient (public key).
func AgeKey(path string) (recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	recipient = id.Recipient().String()
	key := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), recipient, id)
	return recipient, os.WriteFile(path, []byte(key), 0o600)
}

// SopsEncrypt encrypts the plaintext file plain for the age recipient with
// the sops CLI and writes the result to out. The format follows the
// extension of plain.
func SopsEncrypt(sops, recipient, plain, out string) error {
	cmd := exec.Command(sops, "--encrypt", "--age", recipient, "--output", out, plain)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("plugintest: sops --encrypt %s: %v\n%s", plain, err, b)
	}
	return nil
}

// SHA256Hex returns the hex sha256 of s, as token_sha256 wants a token's.
func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
