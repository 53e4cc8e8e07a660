package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/gateway"
	"github.com/gatewayd-access/gatewayd/internal/pgtest"
	"github.com/gatewayd-access/gatewayd/internal/testlog"
)

// Fixed test identities and the upstream credentials gatewayd injects.
const (
	aliceToken = "gwt_alice_test_token_0123456789"
	bobToken   = "gwt_bob_test_token_9876543210"
	// The upstream passwords are distinctive so that a leak anywhere is
	// found by a plain substring search.
	appPassword = "UPSTREAM-pw-7f3a9c1e-app"
	md5Password = "UPSTREAM-pw-2b8d4e6f-md5"
)

// wasmCacheDir keeps compiled modules for every gateway the tests start.
var wasmCacheDir string

var (
	pgSCRAM *pgtest.Server // scram-sha-256, TLS on
	pgMD5   *pgtest.Server // md5
)

func TestMain(m *testing.M) {
	var stops []func()
	stopAll := func() {
		for _, s := range stops {
			s()
		}
	}
	for _, spec := range []struct {
		dst  **pgtest.Server
		opts pgtest.Options
	}{
		{&pgSCRAM, pgtest.Options{TLS: true, AuthMethod: "scram-sha-256"}},
		{&pgMD5, pgtest.Options{AuthMethod: "md5"}},
	} {
		srv, stop, err := pgtest.StartShared(spec.opts)
		if err != nil {
			stopAll()
			fmt.Fprintln(os.Stderr, "starting PostgreSQL:", err)
			os.Exit(1)
		}
		stops = append(stops, stop)
		*spec.dst = srv
	}
	if err := setupUpstreams(); err != nil {
		stopAll()
		fmt.Fprintln(os.Stderr, "preparing PostgreSQL:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "gatewayd-test-wasm-cache-")
	if err != nil {
		stopAll()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wasmCacheDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	removePluginBuild()
	stopAll()
	os.Exit(code)
}

func setupUpstreams() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	steps := []struct {
		srv    *pgtest.Server
		dbname string
		sql    string
	}{
		{pgSCRAM, "postgres", "CREATE ROLE app LOGIN PASSWORD '" + appPassword + "'"},
		{pgSCRAM, "postgres", "CREATE DATABASE app OWNER app"},
		{pgSCRAM, "app", `SET ROLE app;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 100) i;
CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE, ssn text, card text, phone text, note text, profile jsonb);
INSERT INTO people VALUES
  (1, 'Alice Liddell', 'alice.liddell@example.com', '123-45-6789', '4111 1111 1111 1111', '+1 415 555 0100', 'call alice.liddell@example.com', '{"email": "alice.liddell@example.com", "vip": true}'),
  (2, 'Bob Builder', 'bob.builder@example.org', '234-56-7890', '5500-0000-0000-0004', '(212) 555-0199', 'no notes', '{"card": "4111111111111111"}');
CREATE TABLE secrets_vault (id int);`},
		{pgMD5, "postgres", "SET password_encryption = 'md5'; CREATE ROLE legacy LOGIN PASSWORD '" + md5Password + "'"},
		{pgMD5, "postgres", "CREATE DATABASE legacy OWNER legacy"},
	}
	for _, st := range steps {
		u, err := url.Parse(st.srv.SuperuserDSN())
		if err != nil {
			return err
		}
		u.Path = "/" + st.dbname
		conn, err := pgconn.Connect(ctx, u.String())
		if err != nil {
			return fmt.Errorf("connecting to set up: %w", err)
		}
		_, err = conn.Exec(ctx, st.sql).ReadAll()
		_ = conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("setting up: %w", err)
		}
	}
	return nil
}

// env is a running gatewayd in front of the test clusters.
type env struct {
	t       testing.TB
	gw      *gateway.Gateway
	addr    string // postgres listener
	apiAddr string
	dataDir string
	logs    *testlog.Buffer
	cfg     *config.Config
	// plugin is the external handler process, nil when the handler is
	// built in (plugin_harness_test.go).
	plugin *pluginHandler
	// stop shuts the gateway down (once; the test's cleanup does it too).
	stop func()
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startGateway runs gatewayd with a configuration for the test clusters.
// extra is appended to the [listen.postgres] table.
func startGateway(t testing.TB, listenExtra string) *env {
	t.Helper()
	return startGatewayWith(t, listenExtra, "")
}

// testConfig writes and loads the test configuration: the test clusters'
// connections and identities, listenExtra appended to [listen.postgres] and
// more at the end.
func testConfig(t testing.TB, listenExtra, more string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "legacy.pass")
	if err := os.WriteFile(secretFile, []byte(md5Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GWTEST_APP_DB_PASSWORD", appPassword)
	toml := fmt.Sprintf(`
[gateway]
data_dir = %q
admin_groups = ["admins"]

[listen.postgres]
address = "127.0.0.1:0"
%s

[listen.api]
address = "127.0.0.1:0"

[[identity.static]]
name = "alice"
email = "alice@example.com"
groups = ["dev", "admins"]
token_sha256 = %q

[[identity.static]]
name = "bob"
email = "bob@example.com"
groups = ["sales"]
token_sha256 = %q

`, filepath.Join(dir, "data"), listenExtra, sha(aliceToken), sha(bobToken)) +
		appConnection("app-db", pgSCRAM.Addr(), `tls = "require"`) +
		connection("legacy-db", pgMD5.Addr(), "legacy", "legacy", "file:"+secretFile, `tls = "disable"`) +
		appConnection("down-db", freeAddr(t), `connect_timeout = "2s"`) +
		more
	if !strings.Contains(more, "[modules]") {
		toml += modulesTable("")
	}
	path := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading test configuration: %v", err)
	}
	return cfg
}

// startGatewayErr starts a gateway that is expected not to start, and
// returns why.
func startGatewayErr(t testing.TB, more string) (*gateway.Gateway, error) {
	t.Helper()
	cfg := testConfig(t, "", more)
	opts, _ := handlerOptions(t, externalMode(), io.Discard)
	gw, err := gateway.New(context.Background(), cfg, slog.New(slog.DiscardHandler), opts...)
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = gw.Run(ctx)
		})
	}
	return gw, err
}

// startGatewayWith is startGateway with more configuration appended.
func startGatewayWith(t testing.TB, listenExtra, more string) *env {
	t.Helper()
	return startGatewayMode(t, listenExtra, more, externalMode())
}

// startGatewayMode is startGatewayWith with the handler built in or, when
// external, the plugin binary (whose log lines join the gateway's).
func startGatewayMode(t testing.TB, listenExtra, more string, external bool) *env {
	t.Helper()
	cfg := testConfig(t, listenExtra, more)
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts, plugin := handlerOptions(t, external, logs)
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg, log, opts...)
	if err != nil {
		cancel()
		t.Fatalf("starting gateway: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway stopped with error: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("gateway did not stop")
		}
	})
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	return &env{
		t: t, gw: gw, logs: logs, cfg: cfg, plugin: *plugin, stop: stop,
		addr:    gw.Addr("postgres").String(),
		apiAddr: gw.Addr("api").String(),
		dataDir: cfg.Gateway.DataDir,
	}
}

// modulesTable is a [modules] table with the compiled-module cache every
// gateway of the test binary shares, so that each module compiles once;
// extra holds more of its keys.
func modulesTable(extra string) string {
	return fmt.Sprintf("\n[modules]\ncache_dir = %q\n%s\n", wasmCacheDir, extra)
}

// connection is a [[connection]] table for the test configuration, open to
// the dev group; extra holds more of its keys.
func connection(name, addr, database, user, secretRef string, extra ...string) string {
	return fmt.Sprintf(`
[[connection]]
name = %q
protocol = "postgres"
address = %q
database = %q
user = %q
secret = %q
allow_groups = ["dev"]
%s
`, name, addr, database, user, secretRef, strings.Join(extra, "\n"))
}

// appConnection is a connection as role app to database app.
func appConnection(name, addr string, extra ...string) string {
	return connection(name, addr, "app", "app", "env:GWTEST_APP_DB_PASSWORD", extra...)
}

// conninfo is a libpq connection string through the gateway.
func (e *env) conninfo(user, conn, sslmode string) string {
	host, port, _ := net.SplitHostPort(e.addr)
	return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=%s connect_timeout=10", host, port, user, conn, sslmode)
}

// psql runs psql through the gateway and returns its combined output.
func (e *env) psql(token, conninfo string, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", conninfo}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(pgSCRAM.BinDir(), "psql"), all...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+token, "PGCONNECT_TIMEOUT=10", "PGGSSENCMODE=disable")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// mustPSQL is psql as alice on app-db, failing the test on error.
func (e *env) mustPSQL(args ...string) string {
	e.t.Helper()
	out, err := e.psql(aliceToken, e.conninfo("alice", "app-db", "require"), args...)
	if err != nil {
		e.t.Fatalf("psql %v: %v\n%s", args, err, out)
	}
	return out
}
