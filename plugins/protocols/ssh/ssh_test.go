package ssh_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/gatewayd-access/gatewayd/internal/testlog"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/gateway"
	"github.com/gatewayd-access/gatewayd/core/recording"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/internal/sshtest"
)

const aliceToken = "gwt_alice_ssh_token_0123456789"

// sshConnection is an ssh [[connection]] to the test sshd as its user,
// open to the dev group; extra holds more of its keys.
func sshConnection(name, addr, secretFile, hostKey string, extra ...string) string {
	return fmt.Sprintf(`
[[connection]]
name = %q
protocol = "ssh"
address = %q
user = %q
secret = "file:%s"
host_key = %q
allow_groups = ["dev"]
%s
`, name, addr, sshtest.User, secretFile, hostKey, strings.Join(extra, "\n"))
}

// env is a gatewayd with an ssh listener in front of a real sshd.
type env struct {
	t       *testing.T
	sshd    *sshtest.Server
	addr    string // the gateway's ssh listener
	api     string // the gateway's API listener
	dataDir string
	key     string // alice's private key file
	logs    *testlog.Buffer
	stop    func() // stops the gateway (idempotent)
}

// events stops the gateway and returns the audit events of a kind prefix,
// as kind and the event's JSON data.
func (e *env) events(prefix string) [][2]string {
	e.t.Helper()
	e.stop()
	st, err := sqlite.Open(filepath.Join(e.dataDir, "gatewayd.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	var out [][2]string
	err = st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error {
		if strings.HasPrefix(ev.Kind, prefix) {
			out = append(out, [2]string{ev.Kind, string(ev.Data)})
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func start(t *testing.T, more string, forwards ...string) *env {
	t.Helper()
	sshd := sshtest.Start(t)
	dir := t.TempDir()
	priv, pub := sshtest.NewKey(t)
	keyFile := filepath.Join(dir, "alice_key")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "web-1.key")
	if err := os.WriteFile(secretFile, sshd.ClientKey, 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "web-2.pass")
	if err := os.WriteFile(pwFile, []byte(sshd.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	listenerKey, pluginTable := pluginConfig(t)
	toml := fmt.Sprintf(`
[gateway]
data_dir = %q

[listen.ssh]
address = "127.0.0.1:0"
%s

[listen.api]
address = "127.0.0.1:0"

[modules]
# Compiled modules are shared by the tests' gateways (wazero's cache keys
# entries by module and wazero version).
cache_dir = %q

[[identity.static]]
name = "alice"
groups = ["dev"]
token_sha256 = %q
ssh_keys = [%q]

`, filepath.Join(dir, "data"), listenerKey, filepath.Join(os.TempDir(), "gatewayd-test-wasm-cache"), sha(aliceToken), strings.TrimSpace(string(pub))) + pluginTable +
		sshConnection("web-1", sshd.Addr, secretFile, sshd.HostKey) +
		sshConnection("web-2", sshd.Addr, pwFile, sshd.HostKey) +
		sshConnection("wrong-key", sshd.Addr, secretFile, strings.TrimSpace(string(pub))) +
		sshConnection("web-jit", sshd.Addr, secretFile, sshd.HostKey, `require_approval = true`, `reviewers = ["dba"]`) + more
	if len(forwards) > 0 {
		quoted := make([]string, len(forwards))
		for i, f := range forwards {
			quoted[i] = fmt.Sprintf("%q", f)
		}
		toml += sshConnection("fwd-1", sshd.Addr, secretFile, sshd.HostKey, "allow_forward = ["+strings.Join(quoted, ", ")+"]",
			`allow_remote_forward = ["127.0.0.1:*"]`)
	}
	path := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	return &env{t: t, sshd: sshd, addr: gw.Addr("ssh").String(), api: gw.Addr("api").String(), dataDir: cfg.Gateway.DataDir, key: keyFile, logs: logs, stop: stop}
}

func (e *env) sshArgs(tool string) []string {
	_, port, _ := net.SplitHostPort(e.addr)
	p := "-p"
	if tool == "scp" || tool == "sftp" {
		p = "-P"
	}
	return []string{p, port, "-i", e.key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"}
}

// run runs a real OpenSSH client through the gateway.
func (e *env) run(stdin, tool string, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append(e.sshArgs(tool), args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestExecShellScpSftpThroughTheGateway(t *testing.T) {
	e := start(t, "")
	out, err := e.run("", "ssh", "web-1@127.0.0.1", "echo hello from $(whoami); exit 3")
	if out != "hello from gwtest\n" {
		t.Fatalf("ssh exec: %v %q", err, out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit status: %v, want 3", err)
	}
	// stdin reaches the command; stderr comes back apart.
	out, err = e.run("line one\nline two\n", "ssh", "web-1@127.0.0.1", "wc -l; echo to-stderr >&2")
	if err != nil || !strings.Contains(out, "2\n") || !strings.Contains(out, "to-stderr") {
		t.Fatalf("stdin: %v %q", err, out)
	}
	// A shell with a pty.
	out, err = e.run("echo shell-$((6*7))\nexit\n", "ssh", "-tt", "web-1@127.0.0.1")
	if err != nil || !strings.Contains(out, "shell-42") {
		t.Fatalf("shell: %v %q", err, out)
	}
	// scp both ways.
	local := filepath.Join(t.TempDir(), "data.bin")
	payload := strings.Repeat("gatewayd scp payload\n", 50000)
	if err := os.WriteFile(local, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	remote := "/tmp/gwtest-scp-" + fmt.Sprint(time.Now().UnixNano())
	if out, err := e.run("", "scp", local, "web-1@127.0.0.1:"+remote); err != nil {
		t.Fatalf("scp up: %v %s", err, out)
	}
	back := local + ".back"
	if out, err := e.run("", "scp", "web-1@127.0.0.1:"+remote, back); err != nil {
		t.Fatalf("scp down: %v %s", err, out)
	}
	if got, _ := os.ReadFile(back); string(got) != payload {
		t.Fatalf("scp round trip lost data: %d bytes, want %d", len(got), len(payload))
	}
	// rsync over ssh.
	rdir := t.TempDir()
	_ = os.WriteFile(filepath.Join(rdir, "a.txt"), []byte("rsync me"), 0o644)
	rremote := remote + "-rsync"
	rsh := "ssh " + strings.Join(e.sshArgs("ssh"), " ")
	if b, err := exec.Command("rsync", "-a", "-e", rsh, rdir+"/", "web-1@127.0.0.1:"+rremote+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync: %v %s", err, b)
	}
	if out, err := e.run("", "ssh", "web-1@127.0.0.1", "cat "+rremote+"/a.txt; rm -r "+rremote); err != nil || out != "rsync me" {
		t.Fatalf("after rsync: %v %q", err, out)
	}
	// sftp.
	out, err = e.run("ls -l "+remote+"\nrm "+remote+"\n", "sftp", "-b", "-", "web-1@127.0.0.1")
	if err != nil || !strings.Contains(out, remote) {
		t.Fatalf("sftp: %v %q", err, out)
	}
	// The gateway token works as a password.
	_, port, _ := net.SplitHostPort(e.addr)
	cmd := exec.Command("sshpass", "-e", "ssh", "-p", port, "-o", "PubkeyAuthentication=no", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "web-2@127.0.0.1", "echo via-password-$(whoami)")
	cmd.Env = append(os.Environ(), "SSHPASS="+aliceToken)
	b, err := cmd.CombinedOutput()
	if err != nil || string(b) != "via-password-gwtest\n" {
		t.Fatalf("token as password: %v %q", err, b)
	}
}

func TestRefusals(t *testing.T) {
	e := start(t, `
[[policy]]
module = "sqlguard"
connections = ["web-*"]
[policy.config]
deny_commands = ["rm", "shutdown"]
`)
	out, err := e.run("", "ssh", "web-1@127.0.0.1", "ls /nonexistent-gatewayd | xargs rm -f")
	if err == nil || !strings.Contains(out, "gatewayd policy denied this: the command rm is not allowed") {
		t.Fatalf("denied command: %v %q", err, out)
	}
	out, err = e.run("", "ssh", "web-1@127.0.0.1", "echo still fine")
	if err != nil || out != "still fine\n" {
		t.Fatalf("after a denial: %v %q", err, out)
	}
	out, err = e.run("", "ssh", "nope@127.0.0.1", "true")
	if err == nil || !strings.Contains(out, `connection "nope" does not exist or you may not use it`) {
		t.Fatalf("unknown connection: %v %q", err, out)
	}
	out, err = e.run("", "ssh", "wrong-key@127.0.0.1", "true")
	if err == nil || !strings.Contains(out, "host key does not match") {
		t.Fatalf("host key mismatch: %v %q", err, out)
	}
	// Port forwarding is refused; agent forwarding too.
	out, err = e.run("", "ssh", "-o", "ExitOnForwardFailure=yes", "-L", "0:127.0.0.1:22", "web-1@127.0.0.1", "true")
	if err == nil {
		t.Fatalf("local forward accepted: %q", out)
	}
	// Environment: only LANG, LC_* and TERM pass.
	cmd := exec.Command("ssh", append(e.sshArgs("ssh"), "-o", "SetEnv=LD_PRELOAD=/tmp/x LANG=C.UTF-8",
		"web-1@127.0.0.1", "echo pre=$LD_PRELOAD lang=$LANG")...)
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "pre= lang=C.UTF-8") {
		t.Fatalf("env: %v %q", err, b)
	}
	// A wrong key gets no session.
	other, _ := sshtest.NewKey(t)
	otherFile := filepath.Join(t.TempDir(), "k")
	_ = os.WriteFile(otherFile, other, 0o600)
	args := e.sshArgs("ssh")
	for i := range args {
		if args[i] == e.key {
			args[i] = otherFile
		}
	}
	b, err = exec.Command("ssh", append(args, "web-1@127.0.0.1", "true")...).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "Permission denied") {
		t.Fatalf("unknown key: %v %q", err, b)
	}
}

func TestSessionsAreRecorded(t *testing.T) {
	e := start(t, "")
	out, err := e.run("echo recorded-$((1+1))\nexit\n", "ssh", "-tt", "web-1@127.0.0.1")
	if err != nil || !strings.Contains(out, "recorded-2") {
		t.Fatalf("shell: %v %q", err, out)
	}
	// The recording is complete once the gateway has closed the session.
	var screen strings.Builder
	for i := 0; i < 50; i++ {
		screen.Reset()
		files, _ := filepath.Glob(filepath.Join(e.dataDir, "recordings", "*.cast"))
		if len(files) == 1 {
			if f, err := os.Open(files[0]); err == nil {
				err = recording.Play(context.Background(), &screen, f, recording.PlayOptions{Speed: 1000})
				f.Close()
				if err == nil && strings.Contains(screen.String(), "recorded-2") {
					break
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(screen.String(), "recorded-2") {
		t.Fatalf("recording does not hold the output: %q", screen.String())
	}
}

func TestOutputIsMaskedAndRecordedMasked(t *testing.T) {
	e := start(t, `
[[masking]]
module = "pii"
connections = ["web-1"]
`)
	out, err := e.run("", "ssh", "web-1@127.0.0.1", "echo mail alice.liddell@example.com; sleep 0.1; printf 'card 4111 1111 1111 1111'")
	if err != nil || strings.Contains(out, "alice.liddell@") || strings.Contains(out, "4111 1111 1111 1111") ||
		!strings.Contains(out, "@example.com") || !strings.Contains(out, "1111") {
		t.Fatalf("masked exec: %v %q", err, out)
	}
	// A value split across two writes is still masked: lines are masked whole.
	out, err = e.run("", "ssh", "web-1@127.0.0.1", "printf 'bob.builder@exa'; printf 'mple.org\\n'")
	if err != nil || strings.Contains(out, "bob.builder@") {
		t.Fatalf("split value: %v %q", err, out)
	}
	// An interactive shell's recording holds the masked output only.
	out, err = e.run("echo ssn 123-45-6789\nexit\n", "ssh", "-tt", "web-1@127.0.0.1")
	if err != nil || strings.Contains(out, "123-45-6789") {
		t.Fatalf("masked shell: %v %q", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	files, _ := filepath.Glob(filepath.Join(e.dataDir, "recordings", "*.cast"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		// The echo of the typed command is the user's own input: only the
		// command's output must be masked. Input events are recorded as
		// typed; output events must not hold the number.
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"o"`) && strings.Contains(line, "123-45-6789") && !strings.Contains(line, "echo ssn") {
				t.Fatalf("recording %s holds unmasked output: %s", f, line)
			}
		}
	}
}

// client connects with x/crypto/ssh as alice, for what OpenSSH's client
// will not do.
func (e *env) client(t *testing.T, user string, signer gossh.Signer) (*gossh.Client, error) {
	t.Helper()
	return gossh.Dial("tcp", e.addr, &gossh.ClientConfig{
		User: user, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // the test does not pin the gateway's key
		Timeout:         10 * time.Second,
	})
}

func (e *env) aliceSigner(t *testing.T) gossh.Signer {
	t.Helper()
	b, err := os.ReadFile(e.key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBadInputKeepsTheGatewayServing(t *testing.T) {
	e := start(t, "")
	alice := e.aliceSigner(t)

	// Thousands of refused channel opens on one connection.
	c, err := e.client(t, "web-1", alice)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		typ := "x11"
		if i%2 == 0 {
			typ = "direct-tcpip"
		}
		if _, _, err := c.OpenChannel(typ, nil); err == nil {
			t.Fatalf("channel %s opened", typ)
		}
	}
	// The same connection still works.
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.CombinedOutput("echo alive")
	if err != nil || string(out) != "alive\n" {
		t.Fatalf("after refused channels: %v %q", err, out)
	}
	_ = c.Close()

	// A certificate where a key is expected is refused.
	cert := &gossh.Certificate{Key: alice.PublicKey(), CertType: gossh.UserCert, ValidPrincipals: []string{"web-1"},
		ValidBefore: gossh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, alice); err != nil {
		t.Fatal(err)
	}
	certSigner, err := gossh.NewCertSigner(cert, alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(t, "web-1", certSigner); err == nil {
		t.Fatal("a certificate was accepted as a key")
	}

	// A packet announcing 2 GiB before the key exchange ends that
	// connection, at once, and nothing else.
	huge, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer huge.Close()
	_ = huge.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := huge.Write([]byte("SSH-2.0-probe\r\n\x7f\xff\xff\xff\x04")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, huge); err != nil {
		t.Fatalf("a 2 GiB packet left the connection hanging: %v", err)
	}

	// A client that connects and stalls in the key exchange is cut off
	// at the handshake timeout, and others are served meanwhile.
	stalled, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if out, err := e.run("", "ssh", "web-1@127.0.0.1", "echo served"); err != nil || out != "served\n" {
		t.Fatalf("with a stalled client: %v %q", err, out)
	}
}

func TestSFTPOperationsAndRequestsAreAudited(t *testing.T) {
	e := start(t, "")
	dir := "/tmp/gwtest-sftp-" + fmt.Sprint(time.Now().UnixNano())
	local := filepath.Join(t.TempDir(), "up.txt")
	_ = os.WriteFile(local, []byte(strings.Repeat("x", 100000)), 0o644)
	batch := "mkdir " + dir + "\nput " + local + " " + dir + "/up.txt\nget " + dir + "/up.txt " + local + ".back\nrename " + dir + "/up.txt " + dir + "/moved.txt\nrm " + dir + "/moved.txt\nrmdir " + dir + "\n"
	if out, err := e.run(batch, "sftp", "-b", "-", "web-1@127.0.0.1"); err != nil {
		t.Fatalf("sftp: %v %s", err, out)
	}
	if out, err := e.run("", "ssh", "web-1@127.0.0.1", "exit 7"); err == nil {
		t.Fatalf("exit 7: %q", out)
	}
	var ops []string
	for _, ev := range e.events("protocol") {
		if strings.Contains(ev[1], `"sftp.`) {
			ops = append(ops, ev[1])
		}
	}
	all := strings.Join(ops, "\n")
	for _, want := range []string{`"op":"mkdir"`, `"bytes_written":"100000"`, `"bytes_read":"100000"`, `"op":"rename"`, `"target":"` + dir + `/moved.txt"`, `"op":"remove"`, `"op":"rmdir"`} {
		if !strings.Contains(all, want) {
			t.Errorf("sftp events lack %s:\n%s", want, all)
		}
	}
	var reqs []string
	for _, ev := range e.events("request") {
		reqs = append(reqs, ev[1])
	}
	joined := strings.Join(reqs, "\n")
	if !strings.Contains(joined, `"kind":"subsystem","text":"sftp"`) || !strings.Contains(joined, `"text":"exit 7"`) || !strings.Contains(joined, `"tag":"exit 7"`) {
		t.Errorf("request events:\n%s", joined)
	}
}

func TestForwardingFollowsTheAllowList(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	_, echoPort, _ := net.SplitHostPort(echo.Addr().String())
	e := start(t, "", "127.0.0.1:"+echoPort, "0.0.0.0/0:80")
	c, err := e.client(t, "fwd-1", e.aliceSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Dial("tcp", echo.Addr().String())
	if err != nil {
		t.Fatalf("allowed forward: %v", err)
	}
	if _, err := conn.Write([]byte("ping through the target")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(conn, buf, len("ping through the target"))
	if err != nil || string(buf[:n]) != "ping through the target" {
		t.Fatalf("echo: %v %q", err, buf[:n])
	}
	_ = conn.Close()
	for _, dest := range []string{"127.0.0.1:1", "169.254.169.254:80", "[fe80::1]:80"} {
		if _, err := c.Dial("tcp", dest); err == nil {
			t.Errorf("forward to %s allowed", dest)
		}
	}

	// Remote forwarding: the target listens, its connections come back.
	l, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("allowed remote forward: %v", err)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); _, _ = io.Copy(conn, conn) }()
		}
	}()
	echoOver(t, l.Addr().String(), "back through the target")
	if err := l.Close(); err != nil {
		t.Errorf("cancelling the remote forward: %v", err)
	}
	for _, listen := range []string{"0.0.0.0:0", "localhost:0"} {
		if l, err := c.Listen("tcp", listen); err == nil {
			_ = l.Close()
			t.Errorf("remote forward on %s allowed", listen)
		}
	}
	// OpenSSH's ssh -R, port chosen by the target.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append(e.sshArgs("ssh"), "-N", "-o", "ExitOnForwardFailure=yes",
		"-R", "127.0.0.1:0:"+echo.Addr().String(), "fwd-1@127.0.0.1")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// INFO, for the allocated port.
	cmd.Args[slices.Index(cmd.Args, "LogLevel=ERROR")] = "LogLevel=INFO"
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var port int
	var said []string
	for sc := bufio.NewScanner(stderr); port == 0 && sc.Scan(); {
		said = append(said, sc.Text())
		_, _ = fmt.Sscanf(sc.Text(), "Allocated port %d for remote forward", &port)
	}
	if port == 0 {
		t.Fatalf("ssh -R said no allocated port:\n%s", strings.Join(said, "\n"))
	}
	echoOver(t, fmt.Sprintf("127.0.0.1:%d", port), "ssh -R through gatewayd")

	// A connection without allow_forward forwards nothing.
	w, err := e.client(t, "web-1", e.aliceSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Dial("tcp", echo.Addr().String()); err == nil {
		t.Error("web-1 forwarded without allow_forward")
	}
	if l, err := w.Listen("tcp", "127.0.0.1:0"); err == nil {
		_ = l.Close()
		t.Error("web-1 remote-forwarded without allow_remote_forward")
	}
	var kinds []string
	for _, ev := range e.events("protocol") {
		kinds = append(kinds, ev[1])
	}
	joined := strings.Join(kinds, "\n")
	for _, want := range []string{`"forward.listening"`, `"forward.cancelled"`, `"forward.opened"`, `"forward.refused"`, `"listen":"0.0.0.0:0"`, `"originator":"127.0.0.1:`} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %s event in %s", want, joined)
		}
	}
}

// echoOver connects to an echo service at addr and checks a round trip.
func echoOver(t *testing.T, addr, msg string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo over %s: %v %q", addr, err, buf)
	}
}

// Absurd terminal sizes are passed on or refused by the target, never a
// failure of the gateway.
func TestHugeTerminalSizes(t *testing.T) {
	e := start(t, "")
	c, err := e.client(t, "web-1", e.aliceSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	_ = s.RequestPty("xterm", 1<<31-1, 1<<31-1, gossh.TerminalModes{})
	_ = s.WindowChange(1<<31-1, 1<<31-1)
	out, err := s.CombinedOutput("echo still here")
	if err != nil || !strings.Contains(string(out), "still here") {
		t.Fatalf("after huge sizes: %v %q", err, out)
	}
}

// badSigner offers a key it cannot sign for: its signatures are garbage.
type badSigner struct{ pub gossh.PublicKey }

func (b badSigner) PublicKey() gossh.PublicKey { return b.pub }

func (b badSigner) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	return &gossh.Signature{Format: b.pub.Type(), Blob: make([]byte, 64)}, nil
}

// A key the client offers but cannot prove gives nothing: x/crypto/ssh ends
// the connection on a signature that does not verify, before any session,
// even though the key itself (alice's) would be accepted.
func TestUnprovenKeyGetsNoSession(t *testing.T) {
	bobPriv, bobPub := sshtest.NewKey(t)
	e := start(t, fmt.Sprintf(`
[[identity.static]]
name = "bob"
groups = ["dev"]
token_sha256 = %q
ssh_keys = [%q]
`, sha("bob-token"), strings.TrimSpace(string(bobPub))))
	bob, err := gossh.ParsePrivateKey(bobPriv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = gossh.Dial("tcp", e.addr, &gossh.ClientConfig{
		User:            "web-1",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(badSigner{e.aliceSigner(t).PublicKey()}, bob)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		t.Fatal("a connection whose first key's signature does not verify went on")
	}
	// bob alone signs in as bob.
	c, err := e.client(t, "web-1", bob)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.CombinedOutput("echo in"); err != nil || string(out) != "in\n" {
		t.Fatalf("session: %v %q", err, out)
	}
	_ = c.Close()
	e.stop()
	st, err := sqlite.Open(filepath.Join(e.dataDir, "gatewayd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sessions, err := st.Sessions(context.Background(), store.SessionFilter{})
	if err != nil || len(sessions) != 1 || sessions[0].Identity != "bob" {
		t.Fatalf("sessions: %+v %v (want one, bob's)", sessions, err)
	}
}

// OpenSSH offers alice's key without a signature (it holds only the public
// half), cannot sign with it, and goes on to bob's key: the session is
// bob's, and nothing records alice as signed in.
func TestIdentityComesFromTheKeyThatSigned(t *testing.T) {
	bobPriv, bobPub := sshtest.NewKey(t)
	e := start(t, fmt.Sprintf(`
[[identity.static]]
name = "bob"
groups = ["dev"]
token_sha256 = %q
ssh_keys = [%q]
`, sha("bob-token"), strings.TrimSpace(string(bobPub))))
	dir := t.TempDir()
	alicePub := filepath.Join(dir, "alice.pub")
	if err := os.WriteFile(alicePub, gossh.MarshalAuthorizedKey(e.aliceSigner(t).PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	bobKey := filepath.Join(dir, "bob")
	if err := os.WriteFile(bobKey, bobPriv, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-p", port, "-i", alicePub, "-i", bobKey,
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-v",
		"web-1@127.0.0.1", "echo signed in")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "signed in\n") {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	// The client did offer alice's key first.
	if !strings.Contains(string(out), "Offering public key: "+alicePub) {
		t.Fatalf("ssh did not offer alice's key first:\n%s", out)
	}
	e.stop()
	st, err := sqlite.Open(filepath.Join(e.dataDir, "gatewayd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var auths []string
	err = st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error {
		if strings.HasPrefix(ev.Kind, "auth.") {
			auths = append(auths, ev.Kind+" "+ev.Identity)
		}
		return nil
	})
	if err != nil || strings.Join(auths, ",") != "auth.ok bob" {
		t.Errorf("auth events: %q %v, want only bob's auth.ok", auths, err)
	}
	sessions, err := st.Sessions(context.Background(), store.SessionFilter{})
	if err != nil || len(sessions) != 1 || sessions[0].Identity != "bob" {
		t.Fatalf("sessions: %+v %v (want one, bob's)", sessions, err)
	}
}

// Forwards the allow-lists let through still pass policy, as port_forward
// frames: sqlguard's deny_forwards refuses one, in either direction.
func TestForwardsPassPolicy(t *testing.T) {
	e := start(t, `
[[policy]]
module = "sqlguard"
connections = ["fwd-*"]
[policy.config]
deny_forwards = ["*:2", "127.0.0.1:4*"]
`, "127.0.0.1:*")
	c, err := e.client(t, "fwd-1", e.aliceSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Dial("tcp", "127.0.0.1:2"); err == nil || !strings.Contains(err.Error(), "port forwarding (local) to 127.0.0.1:2 is not allowed") {
		t.Fatalf("denied local forward: %v", err)
	}
	if l, err := c.Listen("tcp", "127.0.0.1:4444"); err == nil {
		_ = l.Close()
		t.Fatal("denied remote forward accepted")
	}
	// Not denied: the forward reaches the target (nothing listens there).
	if _, err := c.Dial("tcp", "127.0.0.1:3"); err == nil || !strings.Contains(err.Error(), "could not connect") {
		t.Fatalf("allowed forward: %v", err)
	}
	var decisions []string
	for _, ev := range e.events("policy") {
		decisions = append(decisions, ev[1])
	}
	joined := strings.Join(decisions, "\n")
	for _, want := range []string{`local 127.0.0.1:2`, `remote 127.0.0.1:4444`} {
		if !strings.Contains(joined, want) {
			t.Errorf("no policy event for %s in:\n%s", want, joined)
		}
	}
}

// A client that goes away ends its session at once, though its command
// would run on: the upstream connection is closed with it.
func TestClientGoneEndsSession(t *testing.T) {
	e := start(t, "")
	c, err := e.client(t, "web-1", e.aliceSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("echo started; sleep 60"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("started\n"))
	if _, err := io.ReadFull(out, line); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logs.String(), `"msg":"session ended"`) && !strings.Contains(e.logs.String(), `"@message":"session ended"`) {
		if time.Now().After(deadline) {
			t.Fatal("the session did not end within 10s of its client going away")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
