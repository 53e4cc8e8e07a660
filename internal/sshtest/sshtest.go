// Package sshtest starts throwaway OpenSSH servers (Debian's
// openssh-server) on free loopback ports for tests: their own host key,
// config and authorized keys in a temporary directory, and a test user.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// User is the local account the servers let in.
const User = "gwtest"

// Server is a running sshd.
type Server struct {
	Addr string
	// HostKey is the server's host key as an authorized_keys line.
	HostKey string
	// ClientKey is a private key (OpenSSH PEM) the server accepts for User.
	ClientKey []byte
	// Password is User's password.
	Password string
	// Home is User's home directory.
	Home string
}

// Start runs sshd for the test's duration. It fails the test, saying how to
// install it, when openssh-server is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("sshd not found (%v): apt-get install -y openssh-server (make test installs it)", err)
	}
	home := ensureUser(t)
	// sshd reads authorized_keys as the user: the directory must be
	// reachable by it (t.TempDir's parent is not).
	dir, err := os.MkdirTemp("", "gatewayd-sshtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hostKey, hostPub := NewKey(t)
	clientKey, clientPub := NewKey(t)
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKeyFile := write("host_key", hostKey, 0o600)
	authKeys := write("authorized_keys", clientPub, 0o644)
	password := sharedPassword(t)
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(User + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := write("sshd_config", []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers %s
Subsystem sftp internal-sftp
# Everything a client may send: the gateway's allow-list is what filters.
AcceptEnv LANG LC_* TERM LD_PRELOAD
LogLevel ERROR
`, port, hostKeyFile, filepath.Join(dir, "sshd.pid"), authKeys, User)), 0o644)
	srv := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatalf("starting sshd: %v", err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_, _ = srv.Process.Wait()
		if t.Failed() {
			t.Logf("sshd output:\n%s", logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s:\n%s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Server{Addr: addr, HostKey: strings.TrimSpace(string(hostPub)), ClientKey: clientKey, Password: password, Home: home}
}

// sharedPassword is User's password: random, made once per machine and
// kept (0600) in the temporary directory. User is one system account that
// every test process shares, and go test runs packages in parallel: a
// password of its own for each server would change the account's password
// under another package's running server.
func sharedPassword(t testing.TB) string {
	t.Helper()
	final := filepath.Join(os.TempDir(), "gatewayd-sshtest-password")
	if data, err := os.ReadFile(final); err == nil && len(data) > 0 {
		return string(data)
	}
	f, err := os.CreateTemp(os.TempDir(), "gatewayd-sshtest-password-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	pw := fmt.Sprintf("pw-%x", randomBytes(t, 12))
	if _, err := f.WriteString(pw); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Link fails if another process won the race: use its password.
	if err := os.Link(f.Name(), final); err != nil {
		data, rerr := os.ReadFile(final)
		if rerr != nil || len(data) == 0 {
			t.Fatalf("sshtest password: %v / %v", err, rerr)
		}
		return string(data)
	}
	return pw
}

// ensureUser creates the test user once, unlocked for key login (sshd
// without PAM refuses a locked account).
func ensureUser(t testing.TB) string {
	t.Helper()
	if u, err := user.Lookup(User); err == nil {
		return u.HomeDir
	}
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/bash", User).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s (tests run as root): %v\n%s", User, err, out)
	}
	u, err := user.Lookup(User)
	if err != nil {
		t.Fatal(err)
	}
	return u.HomeDir
}

// NewKey makes an ed25519 key pair: the private key in OpenSSH PEM and the
// public key as an authorized_keys line.
func NewKey(t testing.TB) (priv, pub []byte) {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), ssh.MarshalAuthorizedKey(signer.PublicKey())
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
