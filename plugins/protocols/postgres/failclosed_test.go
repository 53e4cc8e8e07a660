package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite" // the "sqlite" driver, to lock the gateway's store
)

// TestAuditUnavailableFailsClosed holds the store's write lock from outside
// until the audit writer gives up, then checks that statements and new
// sessions are refused and /healthz reports it.
func TestAuditUnavailableFailsClosed(t *testing.T) {
	e := startGateway(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := fmt.Sprintf("postgres://alice:%s@%s/app-db?sslmode=require", aliceToken, e.addr)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, "gatewayd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	lock, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A write takes the database's single write lock and keeps it until
	// the transaction ends.
	if _, err := lock.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS lock_holder (x int)`); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback() }()

	// Statements are admitted while the writer still tries; once its
	// retries are spent, the next statement is refused.
	deadline := time.Now().Add(90 * time.Second)
	var pgErr *pgconn.PgError
	for {
		_, err := conn.Exec(ctx, "SELECT 1")
		if errors.As(err, &pgErr) {
			break
		}
		if err != nil {
			t.Fatalf("statement failed without a PostgreSQL error: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("statements still admitted 90s after the audit log stopped accepting writes")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if pgErr.Code != "58000" || pgErr.Severity != "FATAL" {
		t.Fatalf("refused statement: %s %s %q", pgErr.Severity, pgErr.Code, pgErr.Message)
	}
	// New sessions are refused too.
	_, err = pgconn.Connect(ctx, dsn)
	if !errors.As(err, &pgErr) || pgErr.Code != "58000" {
		t.Fatalf("new session with the audit log down: %v", err)
	}
	resp, err := http.Get("http://" + e.apiAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/healthz = %d with the audit log down", resp.StatusCode)
	}
}
