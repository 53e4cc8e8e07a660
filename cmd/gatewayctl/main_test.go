package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite/sqlitetest"
)

const (
	aliceToken = "gwt_alice-token"
	rootToken  = "gwt_root-token"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// gateway is core/api on a real SQLite store, filled through a real audit
// writer.
type gateway struct {
	t    *testing.T
	path string
	st   *sqlite.Store
	srv  *httptest.Server
	recs string // recordings directory
}

func hexSum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	g := &gateway{t: t, path: filepath.Join(t.TempDir(), "state.db")}
	st, err := sqlite.Open(g.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g.st = st
	dir, err := identity.NewDirectory([]config.StaticIdentity{
		{Name: "alice", Email: "alice@example.com", Groups: []string{"dev"}, TokenSHA256: hexSum(aliceToken)},
		{Name: "root", Groups: []string{"admins"}, TokenSHA256: hexSum(rootToken)},
	})
	if err != nil {
		t.Fatal(err)
	}
	g.recs = t.TempDir()
	g.srv = httptest.NewServer(api.New(api.Options{
		Store: st, Tokens: dir, AdminGroups: []string{"admins"}, Logger: slog.New(slog.DiscardHandler),
		Recordings: g.recs,
	}))
	t.Cleanup(g.srv.Close)
	g.seed()
	return g
}

// seed records alice's ended session with three statements, her open
// session with one long statement, and bob's session with a statement that
// carries terminal escape sequences: 9 events.
func (g *gateway) seed() {
	t := g.t
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, g.st, slog.New(slog.DiscardHandler), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	add := func(r audit.Record) {
		if err := w.AppendSync(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []store.Session{
		{ID: "s-alice-1", Protocol: "postgres", Connection: "app-db", Identity: "alice", Email: "alice@example.com",
			ClientAddr: "127.0.0.1:50001", Started: t0},
		{ID: "s-bob-1", Protocol: "postgres", Connection: "app-db", Identity: "bob", ClientAddr: "127.0.0.1:50002",
			Started: t0.Add(time.Minute)},
		{ID: "s-alice-2", Protocol: "postgres", Connection: "reports", Identity: "alice", Email: "alice@example.com",
			ClientAddr: "127.0.0.1:50003", Started: t0.Add(time.Hour)},
	} {
		if err := g.st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		add(audit.Record{Time: s.Started, Kind: audit.KindSessionStart, SessionID: s.ID, Identity: s.Identity,
			Connection: s.Connection, Data: audit.SessionStartData{Protocol: s.Protocol, ClientAddr: s.ClientAddr}})
	}
	req := func(session, ident string, d audit.RequestData) {
		add(audit.Record{Time: d.Started, Kind: audit.KindRequest, SessionID: session, Identity: ident, Connection: "app-db", Data: d})
	}
	req("s-alice-1", "alice", audit.RequestData{Kind: "query", Text: "SELECT *\n  FROM customers", Started: t0.Add(time.Second),
		Duration: int64(1530 * time.Microsecond), Rows: 3, Outcome: "ok", Tag: "SELECT 3"})
	req("s-alice-1", "alice", audit.RequestData{Kind: "query", Text: "SELECT * FROM nope", Started: t0.Add(2 * time.Second),
		Duration: int64(312 * time.Microsecond), Outcome: "error", ErrorCode: "42P01", ErrorMessage: `relation "nope" does not exist`})
	req("s-alice-1", "alice", audit.RequestData{Kind: "execute", Text: "SELECT pg_sleep($1)", Started: t0.Add(3 * time.Second),
		Duration: int64(1500 * time.Millisecond), Rows: -1, Outcome: "interrupted"})
	req("s-alice-2", "alice", audit.RequestData{Kind: "query", Text: "SELECT " + strings.Repeat("a_long_column, ", 10) + "x FROM t",
		Started: t0.Add(time.Hour + time.Second), Duration: int64(time.Millisecond), Rows: 1, Outcome: "ok"})
	req("s-bob-1", "bob", audit.RequestData{Kind: "query", Text: "SELECT 1;\x1b[2J\x1b]0;owned\x07\u202e", Started: t0.Add(61 * time.Second),
		Rows: 1, Outcome: "ok"})
	end := store.SessionEnd{ID: "s-alice-1", Ended: t0.Add(5 * time.Second), Reason: "client closed", BytesIn: 100, BytesOut: 2048, Requests: 3}
	if err := g.st.EndSession(ctx, end); err != nil {
		t.Fatal(err)
	}
	add(audit.Record{Time: end.Ended, Kind: audit.KindSessionEnd, SessionID: "s-alice-1", Identity: "alice", Connection: "app-db",
		Data: audit.SessionEndData{Reason: end.Reason, BytesIn: end.BytesIn, BytesOut: end.BytesOut, Requests: end.Requests}})
}

// tamper rewrites the data of event seq through database/sql, as someone
// with write access to the data directory could.
func (g *gateway) tamper(seq int64) {
	g.t.Helper()
	sqlitetest.EditEvent(g.t, g.path, seq, func(ev *store.Event) {
		ev.Data = bytes.ReplaceAll(ev.Data, []byte(`"rows":3`), []byte(`"rows":0`))
	})
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs gatewayctl with args against the gateway, with token in
// GATEWAYD_TOKEN.
func (g *gateway) run(token, stdin string, args ...string) result {
	g.t.Helper()
	env := map[string]string{"GATEWAYD_ADDR": g.srv.URL, "GATEWAYD_TOKEN": token}
	return runApp(g.t, env, stdin, args...)
}

func runApp(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp()
	a.stdin = strings.NewReader(stdin)
	a.stdout, a.stderr = &out, &errb
	a.getenv = func(k string) string { return env[k] }
	a.loc = time.UTC
	code := a.run(context.Background(), args)
	return result{code, out.String(), errb.String()}
}

func (r result) check(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	if stdout != "" && r.stdout != stdout {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, stdout)
	}
	if stderr != "" && !strings.Contains(r.stderr, stderr) {
		t.Errorf("stderr %q does not contain %q", r.stderr, stderr)
	}
}

func TestSessions(t *testing.T) {
	g := newGateway(t)
	tests := []struct {
		name   string
		token  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{
			name:  "alice lists her sessions",
			token: aliceToken, args: []string{"sessions", "list"},
			stdout: `ID         IDENTITY  CONNECTION  PROTOCOL  CLIENT           STARTED              DURATION  REQUESTS  END REASON
s-alice-2  alice     reports     postgres  127.0.0.1:50003  2025-03-01 10:00:00  open      0         -
s-alice-1  alice     app-db      postgres  127.0.0.1:50001  2025-03-01 09:00:00  5s        3         client closed
`,
		},
		{
			name:  "the admin lists bob's",
			token: rootToken, args: []string{"--gateway", "%URL%", "sessions", "list", "--identity", "bob", "--limit", "5"},
			stdout: `ID       IDENTITY  CONNECTION  PROTOCOL  CLIENT           STARTED              DURATION  REQUESTS  END REASON
s-bob-1  bob       app-db      postgres  127.0.0.1:50002  2025-03-01 09:01:00  open      0         -
`,
		},
		{
			name:  "alice asking for bob's sessions finds none",
			token: aliceToken, args: []string{"sessions", "list", "--identity", "bob"},
			stdout: "no sessions\n",
		},
		{
			name:  "alice shows her session",
			token: aliceToken, args: []string{"sessions", "show", "s-alice-1"},
			stdout: `Session     s-alice-1
Identity    alice <alice@example.com>
Connection  app-db (postgres)
Client      127.0.0.1:50001
Started     2025-03-01 09:00:00 UTC
Ended       2025-03-01 09:00:05 UTC (after 5s)
End reason  client closed
Traffic     100 B in, 2.0 KiB out
Requests    3

STARTED       DURATION  ROWS  OUTCOME                                      TEXT
09:00:01.000  1.53ms    3     ok                                           SELECT * FROM customers
09:00:02.000  312µs     0     error 42P01: relation "nope" does not exist  SELECT * FROM nope
09:00:03.000  1.5s      -     interrupted                                  SELECT pg_sleep($1)
`,
		},
		{
			name:  "a long statement is cut",
			token: aliceToken, args: []string{"sessions", "show", "s-alice-2"},
			stdout: `Session     s-alice-2
Identity    alice <alice@example.com>
Connection  reports (postgres)
Client      127.0.0.1:50003
Started     2025-03-01 10:00:00 UTC
Ended       open

STARTED       DURATION  ROWS  OUTCOME  TEXT
10:00:01.000  1ms       1     ok       SELECT a_long_column, a_long_column, a_long_column, a_long_column, a_lo…
`,
		},
		{
			name:  "--full after the ID shows it whole",
			token: aliceToken, args: []string{"sessions", "show", "s-alice-2", "--full"},
			stdout: `Session     s-alice-2
Identity    alice <alice@example.com>
Connection  reports (postgres)
Client      127.0.0.1:50003
Started     2025-03-01 10:00:00 UTC
Ended       open

STARTED       DURATION  ROWS  OUTCOME  TEXT
10:00:01.000  1ms       1     ok       SELECT ` + strings.Repeat("a_long_column, ", 10) + `x FROM t
`,
		},
		{
			name:  "escape sequences never reach the terminal",
			token: rootToken, args: []string{"sessions", "show", "s-bob-1"},
			stdout: `Session     s-bob-1
Identity    bob
Connection  app-db (postgres)
Client      127.0.0.1:50002
Started     2025-03-01 09:01:00 UTC
Ended       open

STARTED       DURATION  ROWS  OUTCOME  TEXT
09:01:01.000  0s        1     ok       SELECT 1; [2J ]0;owned
`,
		},
		{
			name:  "someone else's session is not found",
			token: aliceToken, args: []string{"sessions", "show", "s-bob-1"},
			code: 1, stdout: "", stderr: "gatewayctl: showing session s-bob-1: gateway: no such session\n",
		},
		{
			name:  "a missing session is not found",
			token: aliceToken, args: []string{"sessions", "show", "nope"},
			code: 1, stderr: "gateway: no such session",
		},
		{
			name:  "a session id with a slash stays one path segment",
			token: rootToken, args: []string{"sessions", "show", "../../v1/whoami"},
			code: 1, stderr: "gateway: no such session",
		},
		{
			name:  "a wrong token",
			token: "gwt_wrong", args: []string{"sessions", "list"},
			code: 1, stderr: "gatewayctl: listing sessions: gateway refused the token (set GATEWAYD_TOKEN)\n",
		},
		{
			name:  "no token",
			token: "", args: []string{"sessions", "list"},
			code: 1, stderr: "GATEWAYD_TOKEN is not set",
		},
		{name: "show without ID", token: aliceToken, args: []string{"sessions", "show"}, code: 2, stderr: "missing ID"},
		{name: "show with two IDs", token: aliceToken, args: []string{"sessions", "show", "a", "b"}, code: 2, stderr: `unexpected argument "b"`},
		{name: "a bad limit", token: aliceToken, args: []string{"sessions", "list", "--limit", "x"}, code: 2, stderr: "invalid value"},
		{name: "a limit too big", token: aliceToken, args: []string{"sessions", "list", "--limit", "5000"}, code: 2, stderr: "--limit"},
		{name: "an unknown flag", token: aliceToken, args: []string{"sessions", "list", "--nope"}, code: 2, stderr: "-nope"},
		{name: "sessions alone", token: aliceToken, args: []string{"sessions"}, code: 2, stderr: "which one?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, a := range tc.args {
				tc.args[i] = strings.ReplaceAll(a, "%URL%", g.srv.URL)
			}
			r := g.run(tc.token, "", tc.args...)
			r.check(t, tc.code, tc.stdout, tc.stderr)
			if tc.code != 0 && r.stdout != "" {
				t.Errorf("stdout on failure: %q", r.stdout)
			}
			for _, s := range []string{aliceToken, rootToken, "gwt_wrong", "\x1b"} {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("output contains %q", s)
				}
			}
		})
	}
}

func TestSessionsJSON(t *testing.T) {
	g := newGateway(t)
	r := g.run(rootToken, "", "sessions", "list", "--json")
	r.check(t, 0, "", "")
	var l api.SessionList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Sessions) != 3 {
		t.Errorf("admin sees %d sessions, want 3", len(l.Sessions))
	}

	r = g.run(aliceToken, "", "sessions", "show", "--json", "s-alice-1")
	r.check(t, 0, "", "")
	var d api.SessionDetail
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Statements) != 3 || d.Statements[1].ErrorCode != "42P01" || d.Statements[0].Text != "SELECT *\n  FROM customers" {
		t.Errorf("detail = %+v", d)
	}

	r = g.run(rootToken, "", "whoami", "--json")
	var w api.Whoami
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.Name != "root" || !w.Admin {
		t.Errorf("whoami = %+v (%v)", w, err)
	}
}

var okLine = regexp.MustCompile(`^audit chain OK: 9 events, last seq 9, last hash [0-9a-f]{64}\n$`)

func TestAuditVerifyAndExport(t *testing.T) {
	g := newGateway(t)
	dir := t.TempDir()
	exported := filepath.Join(dir, "audit.jsonl")

	r := g.run(rootToken, "", "audit", "verify")
	r.check(t, 0, "", "")
	if !okLine.MatchString(r.stdout) {
		t.Errorf("verify: %q", r.stdout)
	}
	r = g.run(aliceToken, "", "audit", "verify")
	r.check(t, 1, "", "gatewayctl: verifying the audit log: gateway: permission denied")

	r = g.run(rootToken, "", "audit", "export", "-o", exported)
	r.check(t, 0, "", "exported 9 events to "+exported)
	fi, err := os.Stat(exported)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	r = g.run(aliceToken, "", "audit", "export")
	r.check(t, 1, "", "permission denied")

	// The export verifies offline, with no gateway and no token at all.
	offline := map[string]string{"GATEWAYD_ADDR": "http://127.0.0.1:1"}
	r = runApp(t, offline, "", "audit", "verify", "--file", exported)
	r.check(t, 0, "", "")
	if !okLine.MatchString(r.stdout) {
		t.Errorf("verify --file: %q", r.stdout)
	}
	data, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	r = runApp(t, offline, string(data), "audit", "verify", "--file", "-", "--json")
	r.check(t, 0, "", "")
	var v api.VerifyResult
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || !v.OK || v.Events != 9 {
		t.Errorf("verify --file - --json = %+v (%v)", v, err)
	}

	// Exporting to stdout gives the same bytes.
	r = g.run(rootToken, "", "audit", "export")
	r.check(t, 0, string(data), "")

	// An edited export is caught offline.
	edited := strings.Replace(string(data), `"rows":3`, `"rows":0`, 1)
	r = runApp(t, offline, edited, "audit", "verify", "--file", "-")
	r.check(t, 1, "", "")
	if !strings.HasPrefix(r.stdout, "audit chain BROKEN at event seq 4: hash mismatch") {
		t.Errorf("edited export: %q", r.stdout)
	}
	// So is a truncated head.
	lines := strings.SplitAfter(string(data), "\n")
	r = runApp(t, offline, strings.Join(lines[1:], ""), "audit", "verify", "--file", "-")
	r.check(t, 1, "", "")
	if !strings.HasPrefix(r.stdout, "audit chain BROKEN at event seq 2:") {
		t.Errorf("export without its first line: %q", r.stdout)
	}
	r = runApp(t, offline, "", "audit", "verify", "--file", filepath.Join(dir, "missing.jsonl"))
	r.check(t, 1, "", "no such file")

	// Someone edits the store: the gateway's verify names the event, and
	// the tampered log's export fails offline at the same place.
	g.tamper(4)
	r = g.run(rootToken, "", "audit", "verify")
	r.check(t, 1, "", "")
	if !strings.HasPrefix(r.stdout, "audit chain BROKEN at event seq 4: hash mismatch") ||
		!strings.Contains(r.stdout, "the events up to seq 3 verify") {
		t.Errorf("verify after tampering: %q", r.stdout)
	}
	r = g.run(rootToken, "", "audit", "verify", "--json")
	r.check(t, 1, "", "")
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.OK || v.FirstBroken != 4 || v.LastSeq != 3 {
		t.Errorf("verify --json after tampering = %+v (%v)", v, err)
	}
	tampered := filepath.Join(dir, "tampered.jsonl")
	g.run(rootToken, "", "audit", "export", "-o", tampered).check(t, 0, "", "")
	r = runApp(t, offline, "", "audit", "verify", "--file", tampered)
	r.check(t, 1, "", "")
	if !strings.HasPrefix(r.stdout, "audit chain BROKEN at event seq 4:") {
		t.Errorf("verify --file of the tampered log: %q", r.stdout)
	}
	// The export taken before still verifies: it is the evidence.
	runApp(t, offline, "", "audit", "verify", "--file", exported).check(t, 0, "", "")
}

func TestAuditExportSession(t *testing.T) {
	g := newGateway(t)
	r := g.run(rootToken, "", "audit", "export", "--session", "s-alice-1")
	r.check(t, 0, "", "")
	if n := strings.Count(r.stdout, "\n"); n != 5 {
		t.Errorf("session export has %d lines, want 5:\n%s", n, r.stdout)
	}
}

var tokenRE = regexp.MustCompile(`^gwt_[A-Za-z0-9_-]{43}$`)

func TestToken(t *testing.T) {
	r := runApp(t, nil, "", "token", "new", "--name", "carol")
	r.check(t, 0, "", "")
	lines := strings.Split(r.stdout, "\n")
	token := lines[0]
	if !tokenRE.MatchString(token) {
		t.Fatalf("token %q", token)
	}
	if !strings.Contains(r.stdout, "[[identity.static]]\nname = \"carol\"\n") {
		t.Errorf("no identity entry:\n%s", r.stdout)
	}
	m := regexp.MustCompile(`(?m)^token_sha256 = "([0-9a-f]{64})"$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no token_sha256 line:\n%s", r.stdout)
	}
	if strings.Count(r.stdout, token) != 1 {
		t.Errorf("the token is printed more than once")
	}

	// The printed hash is what the gateway checks the token against.
	dir, err := identity.NewDirectory([]config.StaticIdentity{{Name: "carol", TokenSHA256: m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := dir.AuthenticateToken(token); err != nil || id.Name != "carol" {
		t.Errorf("the new token does not authenticate: %v", err)
	}

	// token hash agrees, with or without a trailing newline.
	for _, in := range []string{token, token + "\n", "  " + token + "\r\n"} {
		runApp(t, nil, in, "token", "hash").check(t, 0, m[1]+"\n", "")
	}
	runApp(t, nil, "\n", "token", "hash").check(t, 1, "", "no token on stdin")

	// Two tokens differ.
	r2 := runApp(t, nil, "", "token", "new", "--json")
	var j struct {
		Token       string `json:"token"`
		TokenSHA256 string `json:"token_sha256"`
	}
	if err := json.Unmarshal([]byte(r2.stdout), &j); err != nil {
		t.Fatal(err)
	}
	if j.Token == token || !tokenRE.MatchString(j.Token) || j.TokenSHA256 != hexSum(j.Token) {
		t.Errorf("token new --json = %+v", j)
	}
}

func TestMisc(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no command", args: nil, code: 2, stderr: "no command given"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "unknown subcommand", args: []string{"audit", "nope"}, code: 2, stderr: `audit: unknown command "nope"`},
		{name: "version", args: []string{"version"}, stdout: "gatewayctl dev\n"},
		{name: "command help", args: []string{"sessions", "show", "-h"}, stderr: ""},
		{name: "unreachable gateway", env: map[string]string{"GATEWAYD_TOKEN": "t"},
			args: []string{"--gateway", "127.0.0.1:1", "sessions", "list"}, code: 1,
			stderr: "cannot reach the gateway at http://127.0.0.1:1"},
		{name: "not a URL", env: map[string]string{"GATEWAYD_TOKEN": "t", "GATEWAYD_ADDR": "ftp://x"},
			args: []string{"whoami"}, code: 1, stderr: "is not an http:// or https:// URL"},
		{name: "plaintext to a remote host warns", env: map[string]string{"GATEWAYD_TOKEN": "t"},
			args: []string{"whoami", "--gateway", "http://gateway.invalid:1"}, code: 1,
			stderr: "warning: sending your token unencrypted to gateway.invalid:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runApp(t, tc.env, "", tc.args...)
			r.check(t, tc.code, tc.stdout, tc.stderr)
		})
	}

	r := runApp(t, nil, "", "help")
	r.check(t, 0, "", "")
	for _, cmd := range []string{"sessions list", "sessions show", "audit verify", "audit verify --file", "audit export",
		"token new", "token hash", "whoami", "version", "help", "GATEWAYD_TOKEN", "GATEWAYD_ADDR",
		"request CONNECTION", "review list", "review show", "review approve", "review deny"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("help does not mention %q", cmd)
		}
	}
}

func TestCell(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  string
	}{
		{"SELECT 1", 0, "SELECT 1"},
		{"  SELECT\n\t1  ", 0, "SELECT 1"},
		{"a\x1b[31mb", 0, "a [31mb"},
		{"abcdef", 4, "abc…"},
		{"äöüß", 4, "äöüß"},
		{"äöüßx", 4, "äöü…"},
		{"bad\xffutf8", 0, "bad utf8"},
		{"rtl\u202eoverride", 0, "rtl override"},
	}
	for _, tc := range tests {
		if got := cell(tc.in, tc.width); got != tc.want {
			t.Errorf("cell(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	durs := map[time.Duration]string{
		512 * time.Microsecond:                                           "512µs",
		1534 * time.Microsecond:                                          "1.53ms",
		2481*time.Millisecond + time.Microsecond:                         "2.481s",
		time.Hour + 2*time.Minute + 3*time.Second + 400*time.Millisecond: "1h2m3s",
	}
	for d, want := range durs {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
	bytes := map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 20: "3.0 MiB"}
	for n, want := range bytes {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestAuditExportBrokenOff: when the gateway's export fails midway, the
// command fails and leaves no file that looks complete.
func TestAuditExportBrokenOff(t *testing.T) {
	g := newGateway(t)
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, g.st, slog.New(slog.DiscardHandler), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 { // well over the export's 64 KiB buffer
		if err := w.Append(ctx, audit.Record{Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: audit.KindRequest,
			SessionID: "s", Identity: "alice", Data: audit.RequestData{Text: strings.Repeat("x", 400)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Data that is not compact JSON cannot be exported unchanged.
	sqlitetest.EditEvent(t, g.path, 409, func(ev *store.Event) { ev.Data = []byte(`{"a": 1}`) })

	dir := t.TempDir()
	out := filepath.Join(dir, "audit.jsonl")
	r := g.run(rootToken, "", "audit", "export", "-o", out)
	r.check(t, 1, "", "nothing was written")
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left after a failed export: %v", left)
	}
	r = runApp(t, map[string]string{"GATEWAYD_ADDR": g.srv.URL, "GATEWAYD_TOKEN": rootToken}, "", "audit", "export")
	if r.code != 1 || !strings.Contains(r.stderr, "the output is incomplete") {
		t.Errorf("export to stdout: status %d, stderr %q", r.code, r.stderr)
	}
}
