package pgtest

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func connect(t *testing.T, dsn string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, dsn)
}

func mustConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := connect(t, dsn)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// verifyFull turns a DSN from Server.DSN into one that verifies the server's
// self-signed certificate.
func verifyFull(t *testing.T, srv *Server, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", srv.CertFile())
	u.RawQuery = q.Encode()
	return u.String()
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestStartAuthMethods(t *testing.T) {
	for _, tc := range []struct {
		method     string
		hashPrefix string
	}{
		{"scram-sha-256", "SCRAM-SHA-256$"},
		{"md5", "md5"},
		{"password", "SCRAM-SHA-256$"}, // cleartext exchange, SCRAM-stored
	} {
		t.Run(tc.method, func(t *testing.T) {
			started := time.Now()
			srv := Start(t, Options{TLS: true, AuthMethod: tc.method})
			t.Logf("cluster on %s ready in %s (bin %s)", srv.Addr(), time.Since(started).Round(time.Millisecond), srv.BinDir())

			srv.CreateRole(t, "app", "s3cret'pw")
			srv.CreateDatabase(t, "app", "app")
			srv.Exec(t, "app", `
				CREATE TABLE customers (id int PRIMARY KEY, name text);
				INSERT INTO customers VALUES (1, 'Alice'), (2, 'Bob');
				ALTER TABLE customers OWNER TO app;`)

			// The password is stored in the form the method needs.
			super := mustConnect(t, srv.SuperuserDSN())
			hash := queryString(t, super, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", "app")
			if !strings.HasPrefix(hash, tc.hashPrefix) {
				t.Fatalf("stored password %.16q..., want prefix %q", hash, tc.hashPrefix)
			}

			// The role connects over TLS, verifying the self-signed certificate.
			conn := mustConnect(t, verifyFull(t, srv, srv.DSN("app", "s3cret'pw", "app")))
			if got := queryString(t, conn, "SELECT current_user"); got != "app" {
				t.Errorf("current_user = %q, want app", got)
			}
			if got := queryString(t, conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != "true" {
				t.Errorf("ssl = %q, want true", got)
			}
			if got := queryString(t, conn, "SELECT string_agg(name, ',' ORDER BY id) FROM customers"); got != "Alice,Bob" {
				t.Errorf("customers = %q", got)
			}

			// A wrong password is refused by the configured method.
			_, err := connect(t, srv.DSN("app", "wrong", "app"))
			if sqlState(err) != "28P01" {
				t.Errorf("wrong password: err = %v, want SQLSTATE 28P01", err)
			}
			if !strings.Contains(srv.LogContents(), `password authentication failed for user "app"`) {
				t.Errorf("server log does not record the failed authentication:\n%s", srv.LogContents())
			}
		})
	}
}

func TestRequireTLS(t *testing.T) {
	srv := Start(t, Options{RequireTLS: true})
	srv.CreateRole(t, "app", "pw")
	plain := strings.Replace(srv.DSN("app", "pw", "postgres"), "sslmode=require", "sslmode=disable", 1)
	if _, err := connect(t, plain); sqlState(err) != "28000" {
		t.Errorf("plaintext connection: err = %v, want SQLSTATE 28000 (rejected by pg_hba)", err)
	}
	mustConnect(t, srv.DSN("app", "pw", "postgres"))
}

func TestTrustAndStop(t *testing.T) {
	srv, stop, err := StartShared(Options{AuthMethod: "trust"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	srv.CreateRole(t, "nopw", "")
	conn, err := connect(t, srv.DSN("nopw", "", "postgres"))
	if err != nil {
		t.Fatalf("trust connection: %v", err)
	}
	conn.Close(context.Background())
	if !strings.Contains(srv.LogContents(), "ready to accept connections") {
		t.Errorf("server log lacks the ready line:\n%s", srv.LogContents())
	}

	dir := srv.SocketDir()
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after Stop (err %v)", dir, err)
	}
	if _, err := connect(t, srv.SuperuserDSN()); err == nil {
		t.Errorf("connected after Stop")
	}
}

func TestBadOptions(t *testing.T) {
	if _, _, err := StartShared(Options{AuthMethod: "ident"}); err == nil {
		t.Fatal("AuthMethod ident accepted")
	}
}
