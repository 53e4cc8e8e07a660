package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/store"
)

const carolToken = "gwt_carol_test_token_5555555555"

// guardConfig puts the built-in sqlguard on guard-db, with a rule for the
// admins group (alice) that carol (dev only) does not get. DELETE needs
// review; nobody approves here, so held statements time out after a second.
func guardConfig() string {
	return guardConfigWith("\n[review]\nhold_timeout = \"1s\"\n")
}

// guardConfigWith is guardConfig with its own [review] table (and more).
func guardConfigWith(more string) string {
	return appConnection("guard-db", pgSCRAM.Addr(), `tls = "require"`) + `
[[identity.static]]
name = "carol"
groups = ["dev"]
token_sha256 = "` + sha(carolToken) + `"

[[policy]]
module = "sqlguard"
connections = ["guard-*"]
[policy.config]
deny_kinds = ["DROP", "TRUNCATE"]
deny_functions = ["pg_read_file", "lo_export", "dblink*"]
review_kinds = ["DELETE"]
reviewers = ["dba"]
[[policy.config.rules]]
groups = ["admins"]
deny_tables = ["secrets_*"]
` + more
}

// wantHeldTimeout checks that err is the answer to a statement held for
// review that nobody decided: a timeout naming the review, in process and
// over the plugin transport alike.
func wantHeldTimeout(t *testing.T, what string, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "was not decided") {
		t.Fatalf("%s: err = %v, want a 57014 hold timeout", what, err)
	}
}

// connectAs opens a pgconn session through the gateway.
func (e *env) connectAs(t *testing.T, user, token, conn string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, e.conninfo(user, conn, "require")+" password="+token)
	if err != nil {
		t.Fatalf("connecting as %s to %s: %v", user, conn, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// wantRefused checks that err is the gateway's policy refusal.
func wantRefused(t *testing.T, what string, err error, contains string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("%s: err = %v, want a policy refusal", what, err)
	}
	if pgErr.Code != "42501" || !strings.Contains(pgErr.Message, contains) || pgErr.Severity != "ERROR" {
		t.Fatalf("%s: got %s %s %q, want ERROR 42501 containing %q", what, pgErr.Severity, pgErr.Code, pgErr.Message, contains)
	}
}

func execSQL(c *pgconn.PgConn, sql string) error {
	_, err := c.Exec(context.Background(), sql).ReadAll()
	return err
}

func TestPolicyDeniesAndSessionStaysUsable(t *testing.T) {
	e := startGatewayWith(t, "", guardConfig())
	c := e.connectAs(t, "alice", aliceToken, "guard-db")

	for _, tc := range []struct{ sql, want string }{
		{"DROP TABLE customers", "DROP statements are not allowed"},
		{"truncate customers", "TRUNCATE statements are not allowed"},
		// One Query with several statements is refused whole.
		{"SELECT 1; DROP TABLE customers", "DROP statements are not allowed"},
		{"SELECT pg_read_file('/etc/passwd')", "calling pg_read_file is not allowed"},
		{"SELECT pg_catalog.pg_read_file('/etc/passwd')", "calling pg_catalog.pg_read_file is not allowed"},
		{"SELECT dblink_connect('x')", "dblink"},
		{"COPY customers TO PROGRAM 'cat > /tmp/x'", "COPY ... PROGRAM"},
		{"COPY customers FROM '/etc/passwd'", "file on the database server"},
		{"DO $$ BEGIN PERFORM pg_read_file('/etc/passwd'); END $$", "pg_read_file"},
		{"DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'customers'; END $$", "cannot inspect"},
		{"DO LANGUAGE plpython3u $$ import os $$", "cannot inspect"},
		{"SELEC 1", "could not be parsed"},
		// alice is in admins: the group rule applies to her.
		{"SELECT * FROM secrets_vault", "secrets_vault may not be used"},
		{"WITH d AS (DELETE FROM customers RETURNING *) SELECT count(*) FROM d", ""},
		// Prepared in SQL, one approval would let every EXECUTE run.
		{"PREPARE p AS DELETE FROM customers", "cannot be prepared with SQL PREPARE"},
	} {
		err := execSQL(c, tc.sql)
		if tc.want == "" {
			wantHeldTimeout(t, tc.sql, err)
		} else {
			wantRefused(t, tc.sql, err, tc.want)
		}
		// The session stays usable, outside any failed transaction.
		if err := execSQL(c, "SELECT 1"); err != nil {
			t.Fatalf("after %q: %v", tc.sql, err)
		}
	}
	var n string
	res := c.Exec(context.Background(), "SELECT count(*) FROM customers")
	rows, err := res.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	n = string(rows[0].Rows[0][0])
	if n != "100" {
		t.Fatalf("customers = %s after refused statements, want 100", n)
	}

	// carol is not in admins: the group rule does not apply to her.
	carol := e.connectAs(t, "carol", carolToken, "guard-db")
	if err := execSQL(carol, "SELECT * FROM secrets_vault"); err != nil {
		t.Fatalf("carol: %v", err)
	}
	wantRefused(t, "carol DROP", execSQL(carol, "DROP TABLE customers"), "DROP")

	// Inside a transaction, a refusal aborts it as any error does.
	if err := execSQL(c, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "in transaction", execSQL(c, "TRUNCATE customers"), "TRUNCATE")
	err = execSQL(c, "SELECT 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25P02" {
		t.Fatalf("after a refusal in a transaction: %v, want 25P02", err)
	}
	if err := execSQL(c, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}

func TestPolicySeesExtendedProtocol(t *testing.T) {
	e := startGatewayWith(t, "", guardConfig())
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	ctx := context.Background()

	// Named Parse.
	_, err := c.Prepare(ctx, "s1", "DROP TABLE customers", nil)
	wantRefused(t, "named Parse", err, "DROP")
	// The name can be used again for an allowed statement.
	if _, err := c.Prepare(ctx, "s1", "SELECT count(*) FROM customers", nil); err != nil {
		t.Fatalf("re-Parse of s1: %v", err)
	}
	rr := c.ExecPrepared(ctx, "s1", nil, nil, nil).Read()
	if rr.Err != nil || string(rr.Rows[0][0]) != "100" {
		t.Fatalf("ExecPrepared s1: %v %q", rr.Err, rr.Rows)
	}
	// Unnamed Parse with parameters.
	rr = c.ExecParams(ctx, "DELETE FROM customers WHERE id = $1", [][]byte{[]byte("1")}, nil, nil, nil).Read()
	wantHeldTimeout(t, "unnamed Parse", rr.Err)

	// A batch: the refused Parse fails the batch as a server error would,
	// and the statements before it in the same implicit transaction are
	// rolled back.
	batch := &pgconn.Batch{}
	batch.ExecParams("UPDATE customers SET name = 'changed' WHERE id = 1", nil, nil, nil, nil)
	batch.ExecParams("TRUNCATE customers", nil, nil, nil, nil)
	batch.ExecParams("SELECT 1", nil, nil, nil, nil)
	_, err = c.ExecBatch(ctx, batch).ReadAll()
	wantRefused(t, "batch", err, "TRUNCATE")
	rows, err := c.Exec(ctx, "SELECT name FROM customers WHERE id = 1").ReadAll()
	if err != nil || string(rows[0].Rows[0][0]) != "customer 1" {
		t.Fatalf("after the refused batch: %v %v", err, rows)
	}

	// FunctionCall messages are refused by default.
	fe := c.Frontend()
	fe.Send(&pgproto3.FunctionCall{Function: 1598 /* random() */, ResultFormatCode: 0})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var gotErr *pgproto3.ErrorResponse
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := msg.(*pgproto3.ErrorResponse); ok {
			cp := *m
			gotErr = &cp
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if gotErr == nil || gotErr.Code != "42501" || !strings.Contains(gotErr.Message, "FunctionCall") {
		t.Fatalf("FunctionCall: got %+v, want a 42501 refusal", gotErr)
	}
	if err := execSQL(c, "SELECT 1"); err != nil {
		t.Fatalf("after FunctionCall: %v", err)
	}
}

func TestPolicyDecisionsAreAudited(t *testing.T) {
	e := startGatewayWith(t, "", guardConfig())
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	wantRefused(t, "drop", execSQL(c, "DROP TABLE customers"), "DROP")
	wantHeldTimeout(t, "delete", execSQL(c, "DELETE FROM customers"))
	_ = c.Close(context.Background())

	st := e.closeAndOpenStore()
	var decisions []audit.PolicyData
	err := st.Events(context.Background(), store.EventFilter{Kind: audit.KindPolicy}, func(ev store.Event) error {
		var d audit.PolicyData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return err
		}
		if ev.Identity != "alice" || ev.Connection != "guard-db" || ev.SessionID == "" {
			t.Errorf("policy event = %+v", ev)
		}
		decisions = append(decisions, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(decisions) != 2 ||
		decisions[0].Verdict != "deny" || decisions[0].Module != "sqlguard" || decisions[0].Text != "DROP TABLE customers" ||
		decisions[1].Verdict != "review" || len(decisions[1].Reviewers) != 1 || decisions[1].Reviewers[0] != "dba" {
		t.Fatalf("policy events = %+v", decisions)
	}
	var outcomes []string
	err = st.Events(context.Background(), store.EventFilter{Kind: audit.KindRequest}, func(ev store.Event) error {
		var d audit.RequestData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return err
		}
		outcomes = append(outcomes, d.Outcome+" "+d.ErrorCode)
		return nil
	})
	if want := "denied 42501,denied 57014"; err != nil || strings.Join(outcomes, ",") != want {
		t.Fatalf("request outcomes = %q, %v", outcomes, err)
	}
}
