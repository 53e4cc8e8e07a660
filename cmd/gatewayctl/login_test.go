package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/core/config"
	gw "github.com/gatewayd-access/gatewayd/core/gateway"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/identity/login"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/internal/oidctest"
	"github.com/gatewayd-access/gatewayd/internal/pgtest"
	"github.com/gatewayd-access/gatewayd/internal/sshtest"
	"github.com/gatewayd-access/gatewayd/internal/testlog"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// staticToken is the token of the static identity "ci" beside the OIDC
// logins.
const staticToken = "gwt_ci-service-account-token"

// oidcEnv is a real gatewayd in front of a real PostgreSQL and sshd, with
// a real OpenID provider (zitadel's example OP) to sign in at.
type oidcEnv struct {
	t       *testing.T
	op      *oidctest.Provider
	pg      *pgtest.Server
	api     string // http://127.0.0.1:PORT
	pgAddr  string
	sshAddr string
	cfg     *config.Config
	dataDir string
	cfgDir  string // gatewayctl's config directory
	logs    *testlog.Buffer
	stop    func()
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startOIDC(t *testing.T) *oidcEnv {
	t.Helper()
	return startOIDCWith(t, oidctest.Options{}, false)
}

// startOIDCWith starts the environment with the OP's options (its client
// and users are filled in), the API over HTTPS when apiTLS.
func startOIDCWith(t *testing.T, opOpts oidctest.Options, apiTLS bool) *oidcEnv {
	t.Helper()
	dir := t.TempDir()
	pg := pgtest.Start(t, pgtest.Options{AuthMethod: "scram-sha-256"})
	pg.CreateRole(t, "app", "app-password")
	pg.CreateDatabase(t, "app", "app")
	sshd := sshtest.Start(t)
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pgSecret := write("app.pass", "app-password")
	sshSecret := write("web.key", string(sshd.ClientKey))
	clientSecret := write("oidc.secret", "oidc-client-secret\n")
	apiPort := freeLoopbackPort(t)
	scheme := "http"
	if apiTLS {
		scheme = "https"
	}
	apiBase := fmt.Sprintf("%s://127.0.0.1:%d", scheme, apiPort)
	opOpts.ClientID, opOpts.ClientSecret = "gatewayd", "oidc-client-secret"
	opOpts.RedirectURIs = []string{apiBase + "/v1/login/callback"}
	opOpts.Users = []oidctest.User{
		{Username: "alice", Email: "alice@example.com", Groups: []string{"dev"}},
		{Username: "bob", Email: "bob@example.com", Groups: []string{"ops"}},
		{Username: "eve", Email: "eve@elsewhere.test", Groups: []string{"dev"}},
		{Username: "carol", Email: "carol@example.com", Groups: manyGroups()},
	}
	op := oidctest.Start(t, opOpts)
	toml := fmt.Sprintf(`
[gateway]
data_dir = %q

[listen.postgres]
address = "127.0.0.1:0"

[listen.ssh]
address = "127.0.0.1:0"

[listen.api]
address = "127.0.0.1:%d"
tls = %t

[modules]
cache_dir = %q

[identity.oidc]
issuer = %q
client_id = "gatewayd"
client_secret = "file:%s"
redirect_url = "%s/v1/login/callback"
scopes = ["openid", "email", "profile"]
allowed_domains = ["example.com"]
token_ttl = "1h"

[[identity.static]]
name = "ci"
groups = ["dev"]
token_sha256 = %q

[[connection]]
name = "app-db"
protocol = "postgres"
address = %q
database = "app"
user = "app"
secret = "file:%s"
allow_groups = ["dev"]

[[connection]]
name = "ops-db"
protocol = "postgres"
address = %q
database = "app"
user = "app"
secret = "file:%s"
allow_groups = ["ops"]

[[connection]]
name = "web-1"
protocol = "ssh"
address = %q
user = %q
secret = "file:%s"
host_key = %q
allow_groups = ["dev"]
allow_remote_forward = ["127.0.0.1:*"]
`, filepath.Join(dir, "data"), apiPort, apiTLS, filepath.Join(os.TempDir(), "gatewayd-test-wasm-cache"),
		op.Issuer, clientSecret, apiBase, hexSum(staticToken), pg.Addr(), pgSecret, pg.Addr(), pgSecret,
		sshd.Addr, sshtest.User, sshSecret, sshd.HostKey)
	cfgPath := write("gateway.toml", toml)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e := &oidcEnv{t: t, op: op, pg: pg, api: apiBase, cfg: cfg, dataDir: cfg.Gateway.DataDir,
		cfgDir: filepath.Join(dir, "gatewayctl"), logs: &testlog.Buffer{}}
	e.startGateway()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", e.logs.String())
		}
	})
	return e
}

// startGateway runs gatewayd with e's configuration; e.stop stops it.
func (e *oidcEnv) startGateway() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gw.New(ctx, e.cfg, slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	e.stop = func() { once.Do(func() { cancel(); <-done }) }
	e.pgAddr, e.sshAddr = g.Addr("postgres").String(), g.Addr("ssh").String()
}

func (e *oidcEnv) env() map[string]string {
	return map[string]string{"GATEWAYD_ADDR": e.api, "GATEWAYD_CONFIG_DIR": e.cfgDir,
		"GATEWAYD_CACERT": filepath.Join(e.dataDir, "tls", "gateway.crt")}
}

// login runs gatewayctl login --no-browser and signs in as user through
// the OP's login form with a browser of its own.
func (e *oidcEnv) login(user string) result {
	e.t.Helper()
	stderr := &testlog.Buffer{}
	var stdout strings.Builder
	a := newApp()
	a.stdin = strings.NewReader("")
	a.stdout, a.stderr = &stdout, stderr
	env := e.env()
	a.getenv = func(k string) string { return env[k] }
	a.loc = time.UTC
	code := make(chan int, 1)
	go func() { code <- a.run(context.Background(), []string{"login", "--no-browser"}) }()
	authURL := ""
	for deadline := time.Now().Add(20 * time.Second); authURL == "" && time.Now().Before(deadline); {
		select {
		case c := <-code:
			return result{c, stdout.String(), stderr.String()}
		case <-time.After(20 * time.Millisecond):
		}
		if m := regexp.MustCompile(`(?m)^  (http\S+)$`).FindStringSubmatch(stderr.String()); m != nil {
			authURL = m[1]
		}
	}
	if authURL == "" {
		e.t.Fatalf("gatewayctl login printed no URL:\n%s", stderr.String())
	}
	b := oidctest.NewBrowser()
	if strings.HasPrefix(e.api, "https:") {
		b = oidctest.NewBrowserTrusting(e.t, filepath.Join(e.dataDir, "tls", "gateway.crt"))
	}
	final, page, err := b.Login(authURL, user)
	if err != nil {
		e.t.Fatalf("signing in at the OP: %v", err)
	}
	e.t.Logf("browser ended at %s: %s", final.Redacted(), strings.TrimSpace(page))
	select {
	case c := <-code:
		return result{c, stdout.String(), stderr.String()}
	case <-time.After(30 * time.Second):
		e.t.Fatalf("gatewayctl login did not finish:\n%s", stderr.String())
		return result{}
	}
}

func (e *oidcEnv) run(args ...string) result {
	e.t.Helper()
	return runApp(e.t, e.env(), "", args...)
}

func (e *oidcEnv) creds() credentials {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.cfgDir, "credentials.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var c credentials
	if err := json.Unmarshal(data, &c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// psql runs the real psql with extra environment and connection string.
func (e *oidcEnv) psql(env []string, conninfo, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.pg.BinDir(), "psql"), "-X", "-A", "-t", "-w", "-d", conninfo, "-c", sql)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ssh runs the real ssh client with the certificate login stored.
func (e *oidcEnv) ssh(conn, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, port, _ := net.SplitHostPort(e.sshAddr)
	key := filepath.Join(e.cfgDir, "id_ed25519")
	cmd := exec.CommandContext(ctx, "ssh", "-p", port, "-i", key, "-o", "CertificateFile="+key+"-cert.pub",
		"-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", conn+"@"+host, command)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// connect runs gatewayctl connect NAME until the test ends and returns the
// local port it listens on.
func (e *oidcEnv) connect(name string) int {
	e.t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	a := newApp()
	a.stdout, a.stderr = pw, &testlog.Buffer{}
	env := e.env()
	a.getenv = func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"connect", name}); pw.Close() }()
	e.t.Cleanup(func() { cancel(); <-done })
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`Listening on 127\.0\.0\.1:(\d+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			var port int
			fmt.Sscan(m[1], &port)
			go func() {
				for sc.Scan() {
				}
			}()
			return port
		}
	}
	e.t.Fatalf("gatewayctl connect %s printed no address", name)
	return 0
}

// events returns the audit events of the given kinds, as kind and data.
func (e *oidcEnv) events(kinds ...string) []string {
	e.t.Helper()
	st, err := sqlite.Open(filepath.Join(e.dataDir, "gatewayd.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	var out []string
	err = st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error {
		for _, k := range kinds {
			if ev.Kind == k {
				out = append(out, ev.Kind+" "+string(ev.Data))
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestOIDCLoginEndToEnd signs in through a real OpenID provider's login
// form, then uses the token and certificate with psql and ssh through
// gatewayd, and logs out.
func TestOIDCLoginEndToEnd(t *testing.T) {
	e := startOIDC(t)
	r := e.login("alice")
	r.check(t, 0, "", "")
	if !strings.Contains(r.stdout, "Signed in as alice@example.com (groups: dev)") {
		t.Fatalf("login output: %q", r.stdout)
	}
	c := e.creds()
	if !strings.HasPrefix(c.Token, "gwi_") || c.Name != "alice@example.com" || time.Until(c.Expires) > time.Hour {
		t.Fatalf("stored login: %+v", c)
	}
	for _, f := range []string{"credentials.json", "id_ed25519", "id_ed25519-cert.pub"} {
		fi, err := os.Stat(filepath.Join(e.cfgDir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, err, fi)
		}
	}

	resp, err := http.Get(e.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `gatewayd_logins_total{flow="browser",outcome="ok"} 1`) {
		t.Errorf("/metrics lacks the login:\n%s", metrics)
	}

	// ls lists by group: app-db and web-1 (dev), not ops-db.
	r = e.run("ls")
	r.check(t, 0, "", "")
	if !strings.Contains(r.stdout, "app-db") || !strings.Contains(r.stdout, "web-1") || strings.Contains(r.stdout, "ops-db") {
		t.Fatalf("ls:\n%s", r.stdout)
	}

	// Later commands find the gateway (and its CA file) of the login...
	r = runApp(t, map[string]string{"GATEWAYD_CONFIG_DIR": e.cfgDir}, "", "ls")
	r.check(t, 0, "", "")
	if !strings.Contains(r.stdout, "app-db") {
		t.Fatalf("ls without GATEWAYD_ADDR:\n%s", r.stdout)
	}
	// ... and the token never goes to another gateway.
	r = runApp(t, map[string]string{"GATEWAYD_CONFIG_DIR": e.cfgDir, "GATEWAYD_ADDR": "http://127.0.0.1:1"}, "", "ls")
	r.check(t, 1, "", "GATEWAYD_TOKEN is not set")

	// psql through gatewayctl connect needs no password.
	port := e.connect("app-db")
	out, err := e.psql([]string{"PGPASSWORD="}, fmt.Sprintf("host=127.0.0.1 port=%d dbname=app user=whoever", port), "SELECT current_user")
	if err != nil || out != "app" {
		t.Fatalf("psql through gatewayctl connect: %v %q", err, out)
	}
	// A cancel request goes through the local listener to the gateway.
	pc, err := pgconn.Connect(context.Background(), fmt.Sprintf("host=127.0.0.1 port=%d dbname=app user=whoever sslmode=disable", port))
	if err != nil {
		t.Fatalf("pgx through gatewayctl connect: %v", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = pc.CancelRequest(context.Background())
	}()
	_, err = pc.Exec(context.Background(), "SELECT pg_sleep(20)").ReadAll()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("cancelled query: %v, want SQLSTATE 57014", err)
	}
	pc.Close(context.Background())

	// The token works as a password directly, too (user = the identity).
	host, pgPort, _ := net.SplitHostPort(e.pgAddr)
	direct := fmt.Sprintf("host=%s port=%s user=alice@example.com dbname=app-db sslmode=require", host, pgPort)
	out, err = e.psql([]string{"PGPASSWORD=" + c.Token}, direct, "SELECT 40 + 2")
	if err != nil || out != "42" {
		t.Fatalf("psql with the token: %v %q", err, out)
	}
	// Group access is checked at session start: ops-db is refused.
	out, err = e.psql([]string{"PGPASSWORD=" + c.Token}, strings.Replace(direct, "app-db", "ops-db", 1), "SELECT 1")
	if err == nil || !strings.Contains(out, "ops-db") {
		t.Fatalf("ops-db: %v %q, want refused", err, out)
	}

	// Native ssh with the certificate, no password.
	out, err = e.ssh("web-1", "echo hello from $(whoami)")
	if err != nil || out != "hello from "+sshtest.User {
		t.Fatalf("ssh with the certificate: %v %q", err, out)
	}

	// Over SSH the token also works as a password.
	sc, err := gossh.Dial("tcp", e.sshAddr, &gossh.ClientConfig{User: "web-1", Auth: []gossh.AuthMethod{gossh.Password(c.Token)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("ssh with the token as password: %v", err)
	}
	sess, err := sc.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := sess.CombinedOutput("echo password"); err != nil || string(out) != "password\n" {
		t.Fatalf("ssh with the token as password: %v %q", err, out)
	}
	sc.Close()

	// gatewayctl connect gives an ssh connection a local port too: real ssh
	// through it, with the printed options.
	sshPort := e.connect("web-1")
	key := filepath.Join(e.cfgDir, "id_ed25519")
	cmd := exec.Command("ssh", "-p", fmt.Sprint(sshPort), "-i", key, "-o", "CertificateFile="+key+"-cert.pub",
		"-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile="+filepath.Join(e.cfgDir, "known_hosts"),
		"-o", "HostKeyAlias=gatewayd", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "web-1@127.0.0.1", "echo local port")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "local port\n" {
		t.Fatalf("ssh through gatewayctl connect: %v %q", err, out)
	}

	// gatewayctl ssh runs ssh with the certificate and the gateway's host
	// key pinned from the login.
	r = e.run("ssh", "web-1", "echo via gatewayctl")
	r.check(t, 0, "via gatewayctl\n", "")

	// The token is the bearer token of the API.
	r = e.run("whoami")
	r.check(t, 0, "", "")
	if !strings.Contains(r.stdout, "alice@example.com") {
		t.Fatalf("whoami:\n%s", r.stdout)
	}

	// Logout revokes the token: the API, psql and the certificate refuse.
	r = e.run("logout")
	r.check(t, 0, "Signed out; the token is revoked.\n", "")
	if _, err := os.Stat(filepath.Join(e.cfgDir, "credentials.json")); !os.IsNotExist(err) {
		t.Fatalf("credentials still stored: %v", err)
	}
	if out, err := e.psql([]string{"PGPASSWORD=" + c.Token}, direct, "SELECT 1"); err == nil {
		t.Fatalf("psql with a revoked token: %q", out)
	}
	if err := os.WriteFile(filepath.Join(e.cfgDir, "id_ed25519-cert.pub"), []byte(""), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runApp(t, map[string]string{"GATEWAYD_ADDR": e.api, "GATEWAYD_TOKEN": c.Token}, "", "whoami")
	r.check(t, 1, "", "gateway refused the token")

	e.stop()
	events := strings.Join(e.events("login", "token.issue", "cert.issue", "logout", "token.revoke"), "\n")
	for _, want := range []string{`login {"flow":"browser","subject":"alice"`, "token.issue", `cert.issue {"key_id":"gatewayd:alice@example.com:`, "logout", "token.revoke"} {
		if !strings.Contains(events, want) {
			t.Errorf("audit events lack %q:\n%s", want, events)
		}
	}
	// The psql refused after logout is audited with why.
	if failed := strings.Join(e.events("auth.failed"), "\n"); !strings.Contains(failed, `"protocol":"postgres"`) || !strings.Contains(failed, "gateway token revoked") {
		t.Errorf("auth.failed events lack psql's revoked token:\n%s", failed)
	}
	if strings.Contains(e.logs.String(), c.Token[4:40]) || strings.Contains(events, c.Token[4:40]) {
		t.Error("the token appears in the logs or the audit log")
	}
}

// manyGroups are carol's groups: dev and enough others (as a directory
// gives a long-serving employee) that her token is longer than 4 KiB.
func manyGroups() []string {
	g := []string{"dev"}
	for i := range 120 {
		g = append(g, fmt.Sprintf("team-platform-engineering-%03d", i))
	}
	return g
}

// TestOIDCManyGroups: a token the gateway issues is accepted by its own
// listeners however long it is, psql's password included.
func TestOIDCManyGroups(t *testing.T) {
	e := startOIDC(t)
	e.login("carol").check(t, 0, "", "")
	c := e.creds()
	if len(c.Token) <= 4096 || len(c.Groups) != 121 {
		t.Fatalf("token of %d bytes, %d groups: want a token past 4 KiB", len(c.Token), len(c.Groups))
	}
	host, pgPort, _ := net.SplitHostPort(e.pgAddr)
	direct := fmt.Sprintf("host=%s port=%s user=carol@example.com dbname=app-db sslmode=require", host, pgPort)
	if out, err := e.psql([]string{"PGPASSWORD=" + c.Token}, direct, "SELECT 40 + 2"); err != nil || out != "42" {
		t.Fatalf("psql with a long token: %v %q", err, out)
	}
	port := e.connect("app-db")
	if out, err := e.psql([]string{"PGPASSWORD="}, fmt.Sprintf("host=127.0.0.1 port=%d dbname=app user=whoever", port), "SELECT current_user"); err != nil || out != "app" {
		t.Fatalf("psql through gatewayctl connect with a long token: %v %q", err, out)
	}
	if out, err := e.ssh("web-1", "true"); err != nil {
		t.Fatalf("ssh with the certificate of a long token: %v %q", err, out)
	}
}

// TestOIDCCertificates checks that the SSH listener refuses the same
// certificate signed by another CA, and the certificate of a revoked token.
func TestOIDCCertificates(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	if out, err := e.ssh("web-1", "true"); err != nil {
		t.Fatalf("ssh: %v %q", err, out)
	}
	// Keep the certificate; logout removes gatewayctl's copy.
	key := filepath.Join(e.cfgDir, "id_ed25519-cert.pub")
	cert, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	// The same certificate signed by another CA is refused.
	other, err := identity.OpenUserCA(filepath.Join(t.TempDir(), "other-ca"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(e.cfgDir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Sign(string(gossh.MarshalAuthorizedKey(signer.PublicKey())), identity.Claims{
		ID: "forged", Name: "alice@example.com", Email: "alice@example.com", Groups: []string{"dev"},
		Expiry: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, gossh.MarshalAuthorizedKey(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := e.ssh("web-1", "true"); err == nil {
		t.Fatalf("ssh with a certificate of another CA worked: %q", out)
	}
	if err := os.WriteFile(key, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := e.ssh("web-1", "true"); err != nil {
		t.Fatalf("ssh with the gateway's certificate again: %v %q", err, out)
	}

	e.run("logout").check(t, 0, "", "")
	if err := os.WriteFile(key, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := e.ssh("web-1", "true"); err == nil {
		t.Fatalf("ssh with the certificate of a revoked token worked: %q", out)
	}
	e.stop()
	failed := strings.Join(e.events("auth.failed"), "\n")
	for _, want := range []string{"certificate signed by an unknown authority", "gateway token revoked"} {
		if !strings.Contains(failed, want) {
			t.Errorf("auth.failed events lack %q:\n%s", want, failed)
		}
	}
}

// TestOIDCRefusedLogins: a user outside the allowed domains, a replayed
// callback and a replayed authorization code are refused with a clear
// message and audited.
func TestOIDCRefusedLogins(t *testing.T) {
	e := startOIDC(t)
	r := e.login("eve")
	r.check(t, 1, "", "login refused: eve@elsewhere.test is not in an allowed domain (example.com)")

	// Drive the API directly to replay the provider's redirect.
	start := func() login.StartResponse {
		body := fmt.Sprintf(`{"redirect_uri":"http://127.0.0.1:9/callback","code_challenge":%q}`, login.Challenge("verifier"))
		resp, err := http.Post(e.api+"/v1/login/start", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s login.StartResponse
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != 200 {
			t.Fatalf("start: %d %v", resp.StatusCode, err)
		}
		return s
	}
	callback := e.api + "/v1/login/callback"
	b := oidctest.NewBrowser()
	cb, err := b.LoginUntil(start().AuthURL, "alice", callback)
	if err != nil {
		t.Fatal(err)
	}
	nb := b.NoRedirects()
	status, _, err := nb.Get(cb)
	if err != nil || status != http.StatusFound {
		t.Fatalf("first callback: %d %v", status, err)
	}
	status, page, _ := nb.Get(cb)
	if status != http.StatusBadRequest || !strings.Contains(page, "unknown, expired or already used login state") {
		t.Fatalf("replayed callback: %d %q", status, page)
	}
	// The same code under the state of a new login: the provider refuses
	// it, and the client is told why.
	u, _ := url.Parse(cb)
	s2, _ := url.Parse(start().AuthURL)
	q := url.Values{"state": {s2.Query().Get("state")}, "code": {u.Query().Get("code")}}
	resp, err := nb.GetResponse(callback + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc.Query().Get("error"), "refused the authorization code") {
		t.Fatalf("replayed code: %d %s", resp.StatusCode, loc)
	}
	// A redirect off the loopback is refused at the start.
	resp, err = http.Post(e.api+"/v1/login/start", "application/json", strings.NewReader(
		fmt.Sprintf(`{"redirect_uri":"http://attacker.example:80/cb","code_challenge":%q}`, login.Challenge("v"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("non-loopback redirect: %d", resp.StatusCode)
	}
	// The one-time code is worth nothing without the verifier, and a wrong
	// verifier burns it.
	cb, err = oidctest.NewBrowser().LoginUntil(start().AuthURL, "alice", callback)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = nb.GetResponse(cb)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ = url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	finish := func(verifier string) (int, string) {
		body, _ := json.Marshal(login.FinishRequest{Code: code, CodeVerifier: verifier})
		resp, err := http.Post(e.api+"/v1/login/finish", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, fmt.Sprint(m["error"])
	}
	if st, msg := finish("not-the-verifier"); st != http.StatusBadRequest || !strings.Contains(msg, "code verifier does not match") {
		t.Fatalf("wrong verifier: %d %s", st, msg)
	}
	if st, msg := finish("verifier"); st != http.StatusBadRequest || !strings.Contains(msg, "already used login code") {
		t.Fatalf("right verifier after a wrong one: %d %s", st, msg)
	}
	// Plain HTTP to a gateway off the loopback is refused by gatewayctl.
	r = runApp(t, map[string]string{"GATEWAYD_ADDR": "http://gw.example.com:8080", "GATEWAYD_CONFIG_DIR": t.TempDir()}, "", "login")
	r.check(t, 1, "", "is not https")

	e.stop()
	events := strings.Join(e.events("login.failed"), "\n")
	for _, want := range []string{`"subject":"eve","email":"eve@elsewhere.test"`, "not in an allowed domain", "already used login state", "refused the authorization code"} {
		if !strings.Contains(events, want) {
			t.Errorf("login.failed events lack %q:\n%s", want, events)
		}
	}
}

// TestOIDCProviderDown: with the provider unreachable, a new login fails
// with a clear error, and a token issued before keeps working.
func TestOIDCProviderDown(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	c := e.creds()
	e.op.Stop()
	time.Sleep(1100 * time.Millisecond) // the gateway reads discovery at most once a second
	r := e.run("login", "--no-browser")
	r.check(t, 1, "", "the identity provider cannot be reached")
	host, pgPort, _ := net.SplitHostPort(e.pgAddr)
	out, err := e.psql([]string{"PGPASSWORD=" + c.Token},
		fmt.Sprintf("host=%s port=%s user=alice@example.com dbname=app-db sslmode=require", host, pgPort), "SELECT 'still works'")
	if err != nil || out != "still works" {
		t.Fatalf("psql with a token issued before the provider went down: %v %q", err, out)
	}
	if out, err := e.ssh("web-1", "echo ok"); err != nil || out != "ok" {
		t.Fatalf("ssh with the certificate: %v %q", err, out)
	}
}

// TestOIDCDeviceLogin signs in with the device authorization grant: the
// user confirms the code on the OP's device page, gatewayctl polls.
func TestOIDCDeviceLogin(t *testing.T) {
	e := startOIDC(t)
	stderr := &testlog.Buffer{}
	var stdout strings.Builder
	a := newApp()
	a.stdout, a.stderr = &stdout, stderr
	env := e.env()
	a.getenv = func(k string) string { return env[k] }
	a.loc = time.UTC
	code := make(chan int, 1)
	go func() { code <- a.run(context.Background(), []string{"login", "--device"}) }()
	re := regexp.MustCompile(`and (?:confirm|enter) the code (\S+)`)
	var userCode string
	for deadline := time.Now().Add(20 * time.Second); userCode == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			userCode = m[1]
		}
	}
	if userCode == "" {
		t.Fatalf("no user code shown:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), e.op.Issuer+"/device") {
		t.Fatalf("no verification URI shown:\n%s", stderr.String())
	}
	if err := oidctest.NewBrowser().ConfirmDevice(e.op.Issuer, userCode, "alice"); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 || !strings.Contains(stdout.String(), "Signed in as alice@example.com") {
			t.Fatalf("device login: exit %d\n%s\n%s", c, stdout.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("device login did not finish:\n%s", stderr.String())
	}
	if out, err := e.ssh("web-1", "echo device"); err != nil || out != "device" {
		t.Fatalf("ssh after a device login: %v %q", err, out)
	}
	e.stop()
	if ev := strings.Join(e.events("login"), "\n"); !strings.Contains(ev, `"flow":"device"`) {
		t.Fatalf("login events: %s", ev)
	}
}

// TestConnectWithStaticToken: a service account's static token works with
// gatewayctl connect next to OIDC logins.
func TestConnectWithStaticToken(t *testing.T) {
	e := startOIDC(t)
	e.cfgDir = t.TempDir() // no stored login
	env := e.env()
	env["GATEWAYD_TOKEN"] = staticToken
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	a := newApp()
	a.stdout, a.stderr = pw, &testlog.Buffer{}
	a.getenv = func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"connect", "app-db"}); pw.Close() }()
	defer func() { cancel(); <-done }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	m := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("connect printed %q: %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	out, err := e.psql([]string{"PGPASSWORD="}, "host=127.0.0.1 port="+m[1]+" dbname=app", "SELECT current_user")
	if err != nil || out != "app" {
		t.Fatalf("psql with a static token through connect: %v %q", err, out)
	}
}

// TestLoginRoutesMethods: the login routes answer other methods 405 in
// JSON, and an unauthenticated caller 401.
func TestLoginRoutesMethods(t *testing.T) {
	e := startOIDC(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/login/start", 405},
		{"POST", "/v1/login/callback", 405},
		{"GET", "/v1/logout", 405},
		{"POST", "/v1/logout", 401},
		{"GET", "/v1/connections", 401},
		{"POST", "/v1/login/finish", 400},
	} {
		req, _ := http.NewRequest(tc.method, e.api+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || body["error"] == "" {
			t.Errorf("%s %s: %d %v %v, want %d with a JSON error", tc.method, tc.path, resp.StatusCode, body, err, tc.status)
		}
	}
}

// TestOIDCClaimsFromUserinfo: a provider that keeps email and groups out of
// the ID token (OIDC Core's rule when an access token is issued) is asked
// at its userinfo endpoint.
func TestOIDCClaimsFromUserinfo(t *testing.T) {
	e := startOIDCWith(t, oidctest.Options{UserinfoOnly: true}, false)
	r := e.login("alice")
	r.check(t, 0, "", "")
	if !strings.Contains(r.stdout, "Signed in as alice@example.com (groups: dev)") {
		t.Fatalf("login output: %q", r.stdout)
	}
	r = e.login("eve")
	r.check(t, 1, "", "eve@elsewhere.test is not in an allowed domain")
}

// TestOIDCLoginOverHTTPS: the API over TLS (as a gateway off the loopback
// must run it): login, connect and psql with the gateway's CA file.
func TestOIDCLoginOverHTTPS(t *testing.T) {
	e := startOIDCWith(t, oidctest.Options{}, true)
	e.login("alice").check(t, 0, "", "")
	port := e.connect("app-db")
	out, err := e.psql([]string{"PGPASSWORD="}, fmt.Sprintf("host=127.0.0.1 port=%d dbname=app", port), "SELECT current_user")
	if err != nil || out != "app" {
		t.Fatalf("psql through gatewayctl connect over an https gateway: %v %q", err, out)
	}
	e.run("logout").check(t, 0, "Signed out; the token is revoked.\n", "")
}

// TestOIDCRestart: after a gateway restart, tokens issued before still
// work (the signing key is kept in data_dir) and revoked ones stay
// revoked (revocations are in the store).
func TestOIDCRestart(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	revoked := e.creds().Token
	e.run("logout").check(t, 0, "", "")
	e.login("alice").check(t, 0, "", "")
	kept := e.creds().Token
	e.stop()
	e.startGateway()
	psql := func(token string) error {
		host, port, _ := net.SplitHostPort(e.pgAddr)
		out, err := e.psql([]string{"PGPASSWORD=" + token},
			fmt.Sprintf("host=%s port=%s user=alice@example.com dbname=app-db sslmode=require", host, port), "SELECT 1")
		if err == nil && out != "1" {
			return fmt.Errorf("psql: %q", out)
		}
		return err
	}
	if err := psql(kept); err != nil {
		t.Fatalf("a token issued before the restart: %v", err)
	}
	if err := psql(revoked); err == nil {
		t.Fatal("a token revoked before the restart works after it")
	}
	if out, err := e.ssh("web-1", "echo ok"); err != nil || out != "ok" {
		t.Fatalf("the certificate after a restart: %v %q", err, out)
	}
}

// TestStoredLoginRefused: when the stored login cannot be used, the
// message says to sign in again rather than to set GATEWAYD_TOKEN.
func TestStoredLoginRefused(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	file := filepath.Join(e.cfgDir, "credentials.json")
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	e.run("logout").check(t, 0, "", "")
	// The token of the stored login is revoked.
	if err := os.WriteFile(file, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	e.run("ls").check(t, 1, "", "gateway refused the token of your login (revoked or no longer valid): run gatewayctl login")
	// The stored login has expired.
	c := e.creds()
	c.Expires = time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	data, _ := json.Marshal(c)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e.run("ls").check(t, 1, "", fmt.Sprintf("your login at %s expired at %s: run gatewayctl login", e.api, c.Expires.Format(time.RFC3339)))
}

// TestOIDCOpenConnectionAfterLogout: an SSH connection opened before a
// logout (an OpenSSH ControlMaster keeps one) runs no new command after
// it, whether it signed in with the certificate or the token.
func TestOIDCOpenConnectionAfterLogout(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	keyPEM, err := os.ReadFile(filepath.Join(e.cfgDir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	certLine, err := os.ReadFile(filepath.Join(e.cfgDir, "id_ed25519-cert.pub"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pk, _, _, _, err := gossh.ParseAuthorizedKey(certLine)
	if err != nil {
		t.Fatal(err)
	}
	certSigner, err := gossh.NewCertSigner(pk.(*gossh.Certificate), signer)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(auth gossh.AuthMethod) *gossh.Client {
		sc, err := gossh.Dial("tcp", e.sshAddr, &gossh.ClientConfig{User: "web-1", Auth: []gossh.AuthMethod{auth},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		return sc
	}
	run := func(sc *gossh.Client, cmd string) (string, error) {
		s, err := sc.NewSession()
		if err != nil {
			return "", err
		}
		defer s.Close()
		out, err := s.CombinedOutput(cmd)
		return string(out), err
	}
	conns := map[string]*gossh.Client{
		"certificate": dial(gossh.PublicKeys(certSigner)),
		"token":       dial(gossh.Password(e.creds().Token)),
		// A master connection that opens its first channel later.
		"idle certificate": dial(gossh.PublicKeys(certSigner)),
	}
	for how, sc := range conns {
		for i := range 2 {
			if how == "idle certificate" {
				break
			}
			if out, err := run(sc, "echo before"); err != nil || out != "before\n" {
				t.Fatalf("%s, command %d before logout: %v %q", how, i, err, out)
			}
		}
	}
	if l, err := conns["certificate"].Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatalf("remote forward before logout: %v", err)
	} else {
		_ = l.Close()
	}
	e.run("logout").check(t, 0, "", "")
	time.Sleep(1100 * time.Millisecond) // the credential is checked again a second after the last check
	for how, sc := range conns {
		out, err := run(sc, "echo after")
		if err == nil || !strings.Contains(out, "no longer valid") {
			t.Errorf("%s: a new command on a connection opened before logout: %v %q, want refused", how, err, out)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	if l, err := conns["certificate"].Listen("tcp", "127.0.0.1:0"); err == nil {
		_ = l.Close()
		t.Error("a remote forward opened after logout on a connection opened before it")
	}
}

// TestConnectFollowsTheLogin: gatewayctl connect started with the stored
// login uses the login stored when each client connects: a logout ends
// its use, a new login is taken up without a restart, and an expired one
// is named as such rather than passed on as the gateway's "password
// authentication failed".
func TestConnectFollowsTheLogin(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	port := e.connect("app-db")
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d dbname=app user=whoever", port)
	if out, err := e.psql([]string{"PGPASSWORD="}, conninfo, "SELECT 1"); err != nil || out != "1" {
		t.Fatalf("psql through gatewayctl connect: %v %q", err, out)
	}
	e.run("logout").check(t, 0, "", "")
	if out, err := e.psql([]string{"PGPASSWORD="}, conninfo, "SELECT 1"); err == nil || !strings.Contains(out, "not signed in: run gatewayctl login") {
		t.Fatalf("psql through gatewayctl connect after logout: %v %q", err, out)
	}
	e.login("alice").check(t, 0, "", "")
	if out, err := e.psql([]string{"PGPASSWORD="}, conninfo, "SELECT 2"); err != nil || out != "2" {
		t.Fatalf("psql through gatewayctl connect after signing in again: %v %q", err, out)
	}
	// The stored login expires (its token with it).
	file := filepath.Join(e.cfgDir, "credentials.json")
	c := e.creds()
	c.Expires = time.Now().Add(-time.Minute)
	data, _ := json.Marshal(c)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := e.psql([]string{"PGPASSWORD="}, conninfo, "SELECT 1"); err == nil || !strings.Contains(out, "expired at") || !strings.Contains(out, "run gatewayctl login") {
		t.Fatalf("psql through gatewayctl connect after the login expired: %v %q", err, out)
	}
}

// noRevocations is the empty revocation list of a token signer the test
// opens beside the gateway, on the gateway's own key.
type noRevocations struct{}

func (noRevocations) RevokeToken(string, time.Time) error { return nil }
func (noRevocations) RevokedTokens(time.Time) (map[string]time.Time, error) {
	return map[string]time.Time{}, nil
}

// TestOIDCSessionsEndWithTheSignIn: a session lasts no longer than the
// credential it started with. A psql session and an SSH session signed in
// with a token and a certificate about to expire are ended when they do,
// each with a message naming the sign-in; a static token never expires.
func TestOIDCSessionsEndWithTheSignIn(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	// A token and a certificate of alice's that expire in seconds, signed
	// with the gateway's own keys (token_ttl cannot go below a minute).
	tokens, err := identity.OpenTokens(filepath.Join(e.dataDir, "identity", "token_ed25519.key"), noRevocations{})
	if err != nil {
		t.Fatal(err)
	}
	alice := protocol.Identity{Name: "alice@example.com", Email: "alice@example.com", Groups: []string{"dev"}}
	short, claims, err := tokens.Issue("alice-sub", alice, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := identity.OpenUserCA(filepath.Join(e.dataDir, "identity", "ssh_user_ca_ed25519.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(e.cfgDir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Sign(string(gossh.MarshalAuthorizedKey(signer.PublicKey())), claims)
	if err != nil {
		t.Fatal(err)
	}
	certSigner, err := gossh.NewCertSigner(cert, signer)
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		out  string
		err  error
		took time.Duration
	}
	psqlDone := make(chan result, 1)
	go func() {
		host, pgPort, _ := net.SplitHostPort(e.pgAddr)
		start := time.Now()
		out, err := e.psql([]string{"PGPASSWORD=" + short},
			fmt.Sprintf("host=%s port=%s user=alice@example.com dbname=app-db sslmode=require", host, pgPort), "SELECT pg_sleep(25)")
		psqlDone <- result{out, err, time.Since(start)}
	}()
	sc, err := gossh.Dial("tcp", e.sshAddr, &gossh.ClientConfig{User: "web-1", Auth: []gossh.AuthMethod{gossh.PublicKeys(certSigner)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s, err := sc.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := s.CombinedOutput("echo started; sleep 25")
	took := time.Since(start)
	if ee, ok := err.(*gossh.ExitError); !ok || ee.ExitStatus() != 255 || !strings.Contains(string(out), "your sign-in expired at") || took > 15*time.Second {
		t.Errorf("ssh: %v after %v %q, want exit 255 naming the sign-in's expiry within seconds", err, took, out)
	}
	r := <-psqlDone
	if r.err == nil || !strings.Contains(r.out, "your sign-in expired at") || r.took > 15*time.Second {
		t.Errorf("psql: %v after %v %q, want the session ended naming the sign-in's expiry", r.err, r.took, r.out)
	}
	// An expired token starts nothing.
	host, pgPort, _ := net.SplitHostPort(e.pgAddr)
	if out, err := e.psql([]string{"PGPASSWORD=" + short},
		fmt.Sprintf("host=%s port=%s user=alice@example.com dbname=app-db sslmode=require", host, pgPort), "SELECT 1"); err == nil {
		t.Errorf("psql with an expired token: %q", out)
	}
}

// TestOIDCLogoutEndsOpenSessions: a PostgreSQL session opened with a token
// runs no further statement once the token is revoked.
func TestOIDCLogoutEndsOpenSessions(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	host, pgPort, _ := net.SplitHostPort(e.pgAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=alice@example.com dbname=app-db sslmode=require password=%s",
		host, pgPort, e.creds().Token))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("before logout: %v", err)
	}
	e.run("logout").check(t, 0, "", "")
	_, err = pc.Exec(ctx, "SELECT 1").ReadAll()
	if err == nil || !strings.Contains(err.Error(), "your sign-in was revoked") {
		t.Fatalf("a statement after logout: %v, want the session ended as revoked", err)
	}
}

// TestOIDCLoginAgainRevokesThePrevious: a second login replaces the first
// and revokes its token, so that no forgotten token stays alive.
func TestOIDCLoginAgainRevokesThePrevious(t *testing.T) {
	e := startOIDC(t)
	e.login("alice").check(t, 0, "", "")
	first := e.creds().Token
	r := e.login("alice")
	r.check(t, 0, "", "")
	if !strings.Contains(r.stdout, "The previous login's token is revoked.") {
		t.Errorf("second login said:\n%s", r.stdout)
	}
	second := e.creds().Token
	whoami := func(token string) int {
		req, _ := http.NewRequest("GET", e.api+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if first == second || whoami(first) != http.StatusUnauthorized || whoami(second) != http.StatusOK {
		t.Fatalf("after a second login: first token %d, second %d (want 401, 200)", whoami(first), whoami(second))
	}
}
