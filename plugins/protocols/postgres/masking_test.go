package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// The personal data in the people table (harness_test.go): none of it may
// reach a client of pii-db, in any form.
var rawPII = []string{
	"alice.liddell@example.com", "bob.builder@example.org", "123-45-6789", "234-56-7890",
	"4111 1111 1111 1111", "4111111111111111", "5500-0000-0000-0004", "+1 415 555 0100", "(212) 555-0199",
	"liddell@", "builder@",
}

func piiConfig() string {
	return appConnection("pii-db", pgSCRAM.Addr(), `tls = "require"`) + `
[[masking]]
module = "pii"
connections = ["pii-*"]
`
}

// assertMasked fails when s holds any raw personal data, and checks that
// it holds what masking leaves of it.
func assertMasked(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, raw := range rawPII {
		if strings.Contains(s, raw) {
			t.Errorf("%s: raw %q reached the client:\n%s", what, raw, s)
		}
	}
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, s)
		}
	}
}

func TestMaskingSimpleQueryCopyCursorsAndJSON(t *testing.T) {
	e := startGatewayWith(t, "", piiConfig())
	conninfo := e.conninfo("alice", "pii-db", "require")
	run := func(args ...string) string {
		t.Helper()
		out, err := e.psql(aliceToken, conninfo, args...)
		if err != nil {
			t.Fatalf("psql %v: %v\n%s", args, err, out)
		}
		return out
	}
	// Result rows, text format; names untouched, masked values keep
	// their last four digits (the default partial style).
	out := run("-c", "SELECT * FROM people ORDER BY id")
	assertMasked(t, "rows", out, "Alice Liddell", "Bob Builder", "6789", "1111", "0004")
	// Composite and JSON output of rows.
	assertMasked(t, "composite", run("-c", "SELECT p FROM people p"))
	assertMasked(t, "row()", run("-c", "SELECT row(email, ssn, card) FROM people"))
	assertMasked(t, "to_json", run("-c", "SELECT to_json(p) FROM people p"))
	assertMasked(t, "json_agg", run("-c", "SELECT json_agg(p) FROM people p"))
	assertMasked(t, "jsonb", run("-c", "SELECT profile FROM people"))
	assertMasked(t, "array", run("-c", "SELECT array_agg(email) FROM people"))
	// COPY ... TO STDOUT, text and CSV.
	assertMasked(t, "copy text", run("-c", `\copy people TO STDOUT`))
	assertMasked(t, "copy csv", run("-c", `\copy (SELECT * FROM people) TO STDOUT WITH (FORMAT csv, HEADER)`))
	// Cursors and FETCH.
	assertMasked(t, "cursor", run("-c", "BEGIN", "-c", "DECLARE c CURSOR FOR SELECT email, ssn FROM people",
		"-c", "FETCH 1 FROM c", "-c", "FETCH ALL FROM c", "-c", "COMMIT"))
	// Errors and notices echo values.
	out, err := e.psql(aliceToken, conninfo, "-c", "SELECT email::int FROM people WHERE id = 1")
	if err == nil {
		t.Fatal("cast error expected")
	}
	assertMasked(t, "error message", out, "invalid input syntax for type integer")
	out, err = e.psql(aliceToken, conninfo, "-c", "INSERT INTO people (id, name, email) SELECT 3, 'x', email FROM people WHERE id = 1")
	if err == nil {
		t.Fatal("unique violation expected")
	}
	assertMasked(t, "error detail", out, "already exists")
	assertMasked(t, "notice", run("-c", "DO $$ BEGIN RAISE NOTICE 'found %', (SELECT email FROM people WHERE id = 2) USING HINT = (SELECT ssn FROM people WHERE id = 2); END $$"), "found")
	// Binary COPY cannot be masked: refused before it runs.
	out, err = e.psql(aliceToken, conninfo, "-c", `COPY people TO STDOUT WITH (FORMAT binary)`)
	if err == nil || !strings.Contains(out, "binary COPY data cannot be masked") {
		t.Fatalf("binary COPY: %v %s", err, out)
	}
	// Unmasked connections are untouched.
	out = e.mustPSQL("-c", "SELECT email FROM people WHERE id = 1")
	if out != "alice.liddell@example.com" {
		t.Fatalf("app-db (no masking) = %q", out)
	}
}

func TestMaskingBinaryResultsPortalsAndNotifications(t *testing.T) {
	e := startGatewayWith(t, "", piiConfig())
	ctx := context.Background()
	// pgx describes each statement once and then asks for binary results.
	cfg, err := pgx.ParseConfig(e.conninfo("alice", "pii-db", "require") + " password=" + aliceToken)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for range 3 { // described once, executed from the statement cache after
		var email, ssn, card string
		var profile map[string]any
		if err := conn.QueryRow(ctx, "SELECT email, ssn, card, profile FROM people WHERE id = $1", 1).Scan(&email, &ssn, &card, &profile); err != nil {
			t.Fatal(err)
		}
		pj, _ := json.Marshal(profile)
		assertMasked(t, "pgx binary", strings.Join([]string{email, ssn, card, string(pj)}, " "), "6789", "1111")
	}
	// Exec mode without a statement cache: unnamed statement, Describe
	// Portal.
	rows, err := conn.Query(ctx, "SELECT name, email FROM people ORDER BY id", pgx.QueryExecModeDescribeExec)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for rows.Next() {
		var name, email string
		if err := rows.Scan(&name, &email); err != nil {
			t.Fatal(err)
		}
		all = append(all, name, email)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	assertMasked(t, "describe-exec", strings.Join(all, " "), "Alice Liddell")

	// A portal executed with a row limit, resumed.
	pc := conn.PgConn()
	fe := pc.Frontend()
	fe.Send(&pgproto3.Parse{Query: "SELECT email FROM people ORDER BY id"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Execute{MaxRows: 1})
	fe.Send(&pgproto3.Execute{MaxRows: 1})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	suspended := 0
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			got = append(got, string(m.Values[0]))
		case *pgproto3.PortalSuspended:
			suspended++
		case *pgproto3.ErrorResponse:
			t.Fatalf("portal: %s", m.Message)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if len(got) != 2 || suspended != 2 {
		t.Fatalf("portal rows %q, suspended %d", got, suspended)
	}
	assertMasked(t, "portal", strings.Join(got, " "))

	// LISTEN/NOTIFY payloads.
	var note *pgconn.Notification
	lc, err := pgconn.ConnectConfig(ctx, mustParse(t, e.conninfo("alice", "pii-db", "require")+" password="+aliceToken, func(n *pgconn.Notification) { note = n }))
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(ctx)
	if _, err := lc.Exec(ctx, "LISTEN people_changes").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_notify('people_changes', email) FROM people WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if note == nil {
		t.Fatal("no notification")
	}
	assertMasked(t, "notification", note.Payload, "example.")
}

func mustParse(t *testing.T, conninfo string, onNotify func(*pgconn.Notification)) *pgconn.Config {
	t.Helper()
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { onNotify(n) }
	return cfg
}

func TestMaskedFormIsWhatTheAuditKeeps(t *testing.T) {
	e := startGatewayWith(t, "", piiConfig())
	conninfo := e.conninfo("alice", "pii-db", "require")
	if out, err := e.psql(aliceToken, conninfo, "-c", "SELECT email::int FROM people WHERE id = 1"); err == nil {
		t.Fatalf("cast error expected: %s", out)
	}
	st := e.closeAndOpenStore()
	var all strings.Builder
	err := st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error {
		all.Write(ev.Data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertMasked(t, "audit log", all.String(), "invalid input syntax")
}
