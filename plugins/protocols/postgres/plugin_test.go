package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

// kill -9 of the external handler mid-session: the client's statement
// fails at once (its connection closed by the kernel with the process), the
// session is ended in gatewayd's records, and once the plugin is restarted
// the next session works.
func TestPluginKilledMidSession(t *testing.T) {
	e := startGatewayMode(t, "", "", true)
	c := e.connectAs(t, "alice", aliceToken, "app-db")
	if err := execSQL(c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	bystander := e.connectAs(t, "alice", aliceToken, "app-db")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(60)").ReadAll()
		result <- err
	}()
	time.Sleep(300 * time.Millisecond) // the statement is upstream now
	if err := syscall.Kill(e.plugin.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case err := <-result:
		if err == nil {
			t.Fatal("the statement succeeded after its handler was killed")
		}
		t.Logf("the client saw: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the client still waits 10s after the plugin was killed")
	}
	if took := time.Since(killed); took > 5*time.Second {
		t.Errorf("the session ended %v after the kill", took)
	}
	if err := execSQL(bystander, "SELECT 1"); err == nil {
		t.Fatal("a session of the killed plugin still answers")
	}

	e.plugin.restart()
	next := e.connectAs(t, "alice", aliceToken, "app-db")
	if err := execSQL(next, "SELECT 'after restart'"); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	_ = next.Close(context.Background())

	st := e.closeAndOpenStore()
	sessions, err := st.Sessions(context.Background(), store.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var lost, ended int
	for _, s := range sessions {
		switch {
		case strings.Contains(s.EndReason, protocolplugin.ErrPluginShutdown.Error()):
			lost++
		case !s.Ended.IsZero():
			ended++
		}
	}
	if lost != 2 || ended != 1 || len(sessions) != 3 {
		for _, s := range sessions {
			t.Logf("session %s ended %v: %q", s.ID, s.Ended, s.EndReason)
		}
		t.Fatalf("%d sessions: %d ended by the plugin's death, %d otherwise; want 3: 2 and 1", len(sessions), lost, ended)
	}
}

// Shutting gatewayd down ends an open session with PostgreSQL's own
// admin-shutdown error, in-process as through the plugin, whose handler
// learns of it through its context.
func TestShutdownEndsSessionsWithAnError(t *testing.T) {
	e := startGateway(t, "")
	c := e.connectAs(t, "alice", aliceToken, "app-db")
	if err := execSQL(c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	e.stop()
	err := execSQL(c, "SELECT 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" || !strings.Contains(pgErr.Message, "shutting down") {
		t.Fatalf("statement after shutdown: %v", err)
	}
}

// A [[plugin]] of kind "protocol" named by [listen.postgres] plugin serves
// the listener out of process, from gateway.toml alone, and comes back
// after kill -9.
func TestListenerServedByConfiguredPlugin(t *testing.T) {
	bin, sum := pluginBinary(t)
	e := startGateway(t, `plugin = "pg-external"`+"\n"+fmt.Sprintf(`
[[plugin]]
name = "pg-external"
kind = "protocol"
path = %q
sha256 = "%x"
`, bin, sum))
	if out := e.mustPSQL("-c", "SELECT current_user, count(*) FROM customers"); out != "app|100" {
		t.Fatalf("psql through the configured plugin: %q", out)
	}
	// The plugin process, not gatewayd, served it.
	pids, _ := exec.Command("pgrep", "-f", bin).Output()
	if len(strings.Fields(string(pids))) == 0 {
		t.Fatalf("no %s process", bin)
	}
	for _, pid := range strings.Fields(string(pids)) {
		_ = exec.Command("kill", "-9", pid).Run()
	}
	var out string
	var err error
	for i := 0; i < 50; i++ {
		if out, err = e.psql(aliceToken, e.conninfo("alice", "app-db", "require"), "-c", "SELECT 1"); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || out != "1" {
		t.Fatalf("after kill -9 of the plugin: %v %q", err, out)
	}
}
