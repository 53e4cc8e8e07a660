package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// verifyFullConnections are connections that verify the upstream's
// certificate: one for the name it holds, one for another name.
func verifyFullConnections() string {
	ca := fmt.Sprintf("tls_ca_file = %q", pgSCRAM.CertFile())
	return appConnection("verified-db", pgSCRAM.Addr(), `tls = "verify-full"`, ca) +
		appConnection("wrong-name-db", pgSCRAM.Addr(), `tls = "verify-full"`, ca, `tls_server_name = "db.example.com"`)
}

func TestUpstreamVerifyFull(t *testing.T) {
	e := startGatewayWith(t, "", verifyFullConnections())
	out, err := e.psql(aliceToken, e.conninfo("alice", "verified-db", "require"), "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	if err != nil || out != "t" {
		t.Fatalf("verify-full upstream: %v %q", err, out)
	}
	_, err = pgconn.Connect(context.Background(), fmt.Sprintf("postgres://alice:%s@%s/wrong-name-db?sslmode=require", aliceToken, e.addr))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08006" {
		t.Fatalf("certificate for another name: %v, want 08006", err)
	}
	if !strings.Contains(e.logs.String(), "certificate") {
		t.Fatalf("the gateway log does not say why the upstream was refused")
	}
}

// TestLargeResultsStream relays far more bytes than the gateway allocates:
// rows and COPY data stream through fixed buffers.
func TestLargeResultsStream(t *testing.T) {
	e := startGateway(t, "")
	const rows, rowBytes = 200, 1 << 20 // 200 MiB through the gateway
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pgSCRAM.BinDir(), "psql"), "-X", "-A", "-t", "-o", "/dev/null",
		"-c", fmt.Sprintf("SELECT repeat('x', %d) FROM generate_series(1, %d)", rowBytes, rows),
		e.conninfo("alice", "app-db", "require"))
	cmd.Env = append(os.Environ(), "PGPASSWORD="+aliceToken, "PGGSSENCMODE=disable")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	relayed := uint64(rows * rowBytes)
	t.Logf("relayed %d MiB, gateway allocated %d KiB", relayed>>20, allocated>>10)
	if allocated > relayed/20 {
		t.Fatalf("gateway allocated %d bytes to relay %d: rows are being buffered", allocated, relayed)
	}
}
