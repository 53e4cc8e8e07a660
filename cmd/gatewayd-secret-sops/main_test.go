package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gatewayd-access/gatewayd/internal/testlog"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/gateway"
	"github.com/gatewayd-access/gatewayd/core/pluginhost"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/internal/pgtest"
	"github.com/gatewayd-access/gatewayd/internal/plugintest"
)

const (
	aliceToken = "gwt_alice_sops_test_token_0123456789"
	// The upstream password lives only in the sops file; it is
	// distinctive so that a leak is found by a substring search.
	appPassword = "SOPS-upstream-pw-4f1d9a2b"
	// tokenSHA256 is the sha256 of aliceToken.
)

// Built once by TestMain.
var (
	pluginPath, pluginSum string
	encrypted             string // secrets.yaml, encrypted for ageKey
	ageKey                string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatewayd-secret-sops-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) error {
	sops, err := plugintest.SopsCLI(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	if err != nil {
		return err
	}
	if pluginPath, pluginSum, err = plugintest.Build(".", dir, "gatewayd-secret-sops"); err != nil {
		return err
	}
	ageKey = filepath.Join(dir, "age.key")
	recipient, err := plugintest.AgeKey(ageKey)
	if err != nil {
		return err
	}
	plain := filepath.Join(dir, "plain.yaml")
	doc := "app_db: " + appPassword + "\nreports:\n  password: other-" + appPassword + "\n"
	if err := os.WriteFile(plain, []byte(doc), 0o600); err != nil {
		return err
	}
	encrypted = filepath.Join(dir, "secrets.yaml")
	return plugintest.SopsEncrypt(sops, recipient, plain, encrypted)
}

// TestPluginStaysLight: a secret plugin built on the SDK does not link the
// core's heavy dependencies.
func TestPluginStaysLight(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, heavy := range []string{"github.com/tetratelabs/wazero", "modernc.org/sqlite", "github.com/pganalyze/pg_query_go",
		"github.com/gatewayd-access/gatewayd/core/"} {
		for dep := range strings.Lines(string(out)) {
			if strings.HasPrefix(dep, heavy) {
				t.Errorf("the plugin depends on %s", strings.TrimSpace(dep))
				break
			}
		}
	}
}

// gw is a gatewayd running with the sops plugin.
type gw struct {
	cfg  *config.Config
	g    *gateway.Gateway
	logs *testlog.Buffer
	stop func()
}

// writeConfig writes gateway.toml into a new directory, with the encrypted
// file at secrets/app.yaml beside it, and loads it as `gatewayd serve` does.
func writeConfig(t *testing.T, pgAddr, sum string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(encrypted)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "app.yaml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf(`
[gateway]
data_dir = "data"

[listen.postgres]
address = "127.0.0.1:0"

[[identity.static]]
name = "alice"
groups = ["dev"]
token_sha256 = %q

[[connection]]
name = "app-db"
protocol = "postgres"
address = %q
database = "app"
user = "app"
secret = "sops:secrets/app.yaml#app_db"
allow_groups = ["dev"]
tls = "disable"

[[plugin]]
name = "sops"
kind = "secret"
path = %q
sha256 = %q
env = { SOPS_AGE_KEY_FILE = %q }

[secrets]
# Every session looks its credential up, through the plugin.
cache_ttl = "0s"
`, plugintest.SHA256Hex(aliceToken), pgAddr, pluginPath, sum, ageKey)
	path := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithSecretSchemes("env", "file"))
	if err != nil {
		t.Fatalf("loading configuration: %v", err)
	}
	return cfg
}

func startGateway(t *testing.T, cfg *config.Config) *gw {
	t.Helper()
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("starting gatewayd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("gatewayd stopped with an error: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("gatewayd did not stop")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("gatewayd logs:\n%s", logs)
		}
	})
	return &gw{cfg: cfg, g: g, logs: logs, stop: stop}
}

// psql runs psql through the gateway as alice on app-db.
func (e *gw) psql(t *testing.T, binDir, sql string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(e.g.Addr("postgres").String())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		fmt.Sprintf("host=%s port=%s user=alice dbname=app-db sslmode=require connect_timeout=10", host, port), "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+aliceToken, "PGGSSENCMODE=disable")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// events returns the audit events of kind, after the gateway has stopped.
func (e *gw) events(t *testing.T, kind string) []store.Event {
	t.Helper()
	e.stop()
	st, err := sqlite.Open(filepath.Join(e.cfg.Gateway.DataDir, "gatewayd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var evs []store.Event
	err = st.Events(context.Background(), store.EventFilter{Kind: kind}, func(ev store.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// pluginPIDs returns the processes running the plugin binary.
func pluginPIDs() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", ent.Name(), "exe")); err == nil && exe == pluginPath {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestEndToEnd: psql through gatewayd, whose credential for the target
// comes from a sops file through the plugin; then kill -9 of the plugin,
// and the next session works.
func TestEndToEnd(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{AuthMethod: "scram-sha-256"})
	pg.CreateRole(t, "app", appPassword)
	pg.CreateDatabase(t, "app", "app")

	e := startGateway(t, writeConfig(t, pg.Addr(), pluginSum))
	out, err := e.psql(t, pg.BinDir(), "SELECT current_user")
	if err != nil || out != "app" {
		t.Fatalf("psql through gatewayd: %v\n%s", err, out)
	}

	pids := pluginPIDs()
	if len(pids) != 1 {
		t.Fatalf("plugin processes %v, want one", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	out, err = e.psql(t, pg.BinDir(), "SELECT 'after the crash'")
	if err != nil || out != "after the crash" {
		t.Fatalf("psql after kill -9 of the plugin: %v\n%s", err, out)
	}
	if now := pluginPIDs(); len(now) != 1 || now[0] == pids[0] {
		t.Errorf("plugin processes after the restart %v (killed %d)", now, pids[0])
	}

	logs := e.logs.String()
	starts := e.events(t, audit.KindPluginStart)
	crashes := e.events(t, audit.KindPluginCrash)
	restarts := e.events(t, audit.KindPluginRestart)
	if len(starts) != 1 || len(crashes) != 1 || len(restarts) != 1 {
		t.Fatalf("plugin events: %d start, %d crash, %d restart", len(starts), len(crashes), len(restarts))
	}
	var crash audit.PluginCrashData
	var restart audit.PluginRestartData
	var start audit.PluginStartData
	if err := errors.Join(json.Unmarshal(crashes[0].Data, &crash), json.Unmarshal(restarts[0].Data, &restart),
		json.Unmarshal(starts[0].Data, &start)); err != nil {
		t.Fatal(err)
	}
	if crash.Plugin != "sops" || crash.PID != pids[0] || crash.Reason != "exited: signal: killed" {
		t.Errorf("plugin.crash %+v", crash)
	}
	if restart.Plugin != "sops" || restart.Outcome != "ok" || restart.PID == 0 {
		t.Errorf("plugin.restart %+v", restart)
	}
	t.Logf("plugin start took %v", time.Duration(start.Took))

	// The credential never shows: not in gatewayd's logs, not in the audit log.
	all := e.events(t, "")
	for _, ev := range all {
		if strings.Contains(string(ev.Data), appPassword) {
			t.Errorf("audit event %s carries the credential", ev.Kind)
		}
	}
	if strings.Contains(logs, appPassword) {
		t.Error("gatewayd's log carries the credential")
	}
	if !strings.Contains(logs, `"plugin":"sops"`) {
		t.Error("no log line names the plugin")
	}
}

// TestWrongChecksum: gatewayd refuses to start when the plugin binary does
// not match the sha256 in gateway.toml, and says which plugin.
func TestWrongChecksum(t *testing.T) {
	before := len(pluginPIDs())
	cfg := writeConfig(t, "127.0.0.1:1", strings.Repeat("0", 64))
	_, err := gateway.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, pluginhost.ErrChecksumMismatch) || !strings.Contains(err.Error(), `secret plugin "sops"`) || !strings.Contains(err.Error(), pluginSum) {
		t.Fatalf("err = %v", err)
	}
	if len(pluginPIDs()) != before {
		t.Error("the plugin ran")
	}
}
