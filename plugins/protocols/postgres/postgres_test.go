package postgres_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
)

func TestPSQLSessionRunsAsTheConnectionRole(t *testing.T) {
	e := startGateway(t, "")
	out := e.mustPSQL("-c", "SELECT current_user, current_database(), count(*) FROM customers")
	if out != "app|app|100" {
		t.Fatalf("psql output = %q, want app|app|100", out)
	}
	// md5 upstream, credential from a file backend.
	out, err := e.psql(aliceToken, e.conninfo("alice", "legacy-db", "require"), "-c", "SELECT current_user")
	if err != nil || out != "legacy" {
		t.Fatalf("legacy-db: %v %q", err, out)
	}
}

func TestStatementsAreAuditedAndChainVerifies(t *testing.T) {
	e := startGateway(t, "")
	out, err := e.psql(aliceToken, e.conninfo("alice", "app-db", "require"),
		"-c", "SELECT id FROM customers WHERE id <= 3", "-c", "UPDATE customers SET name = name WHERE id = 1", "-c", "SELECT 1/0")
	if err == nil || !strings.Contains(out, "division by zero") {
		t.Fatalf("psql: %v %q", err, out)
	}
	st := e.closeAndOpenStore()
	sessions, err := st.Sessions(context.Background(), store.SessionFilter{})
	if err != nil || len(sessions) != 1 {
		t.Fatalf("sessions = %v, %v", sessions, err)
	}
	s := sessions[0]
	if s.Identity != "alice" || s.Connection != "app-db" || s.Ended.IsZero() || s.Requests != 3 {
		t.Fatalf("session = %+v", s)
	}
	var reqs []audit.RequestData
	err = st.Events(context.Background(), store.EventFilter{SessionID: s.ID, Kind: audit.KindRequest}, func(ev store.Event) error {
		var d audit.RequestData
		if err := jsonUnmarshal(ev.Data, &d); err != nil {
			return err
		}
		reqs = append(reqs, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		text    string
		rows    int64
		outcome string
		code    string
	}{
		{"SELECT id FROM customers WHERE id <= 3", 3, "ok", ""},
		{"UPDATE customers SET name = name WHERE id = 1", 1, "ok", ""},
		{"SELECT 1/0", 0, "error", "22012"},
	}
	if len(reqs) != len(want) {
		t.Fatalf("got %d request events, want %d: %+v", len(reqs), len(want), reqs)
	}
	for i, w := range want {
		r := reqs[i]
		if r.Text != w.text || r.Rows != w.rows || r.Outcome != w.outcome || r.ErrorCode != w.code || r.Duration <= 0 {
			t.Errorf("request %d = %+v, want %+v", i, r, w)
		}
	}
	res, err := audit.Verify(context.Background(), st)
	if err != nil || !res.OK {
		t.Fatalf("audit chain: %+v %v", res, err)
	}
	kinds := map[string]int{}
	_ = st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error { kinds[ev.Kind]++; return nil })
	for _, k := range []string{audit.KindAuthOK, audit.KindSessionStart, audit.KindSessionEnd, audit.KindRequest} {
		if kinds[k] == 0 {
			t.Errorf("no %s event; events: %v", k, kinds)
		}
	}
}

// closeAndOpenStore stops nothing but opens the gateway's store read-side
// after the audit writer has flushed.
func (e *env) closeAndOpenStore() store.Store {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := sqlite.Open(filepath.Join(e.dataDir, "gatewayd.db"))
		if err != nil {
			e.t.Fatal(err)
		}
		sessions, _ := st.Sessions(context.Background(), store.SessionFilter{})
		ended := len(sessions) > 0
		for _, s := range sessions {
			ended = ended && !s.Ended.IsZero()
		}
		var ends int
		_ = st.Events(context.Background(), store.EventFilter{Kind: audit.KindSessionEnd}, func(store.Event) error { ends++; return nil })
		if (ended && ends >= len(sessions)) || time.Now().After(deadline) {
			e.t.Cleanup(func() { _ = st.Close() })
			return st
		}
		_ = st.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBadCredentialsGetOneMessage(t *testing.T) {
	e := startGateway(t, "")
	cases := []struct {
		name, user, token, conn, code, msg string
	}{
		{"wrong token", "alice", "not-the-token", "app-db", "28P01", `password authentication failed for user "alice"`},
		{"unknown identity", "mallory", "not-the-token", "app-db", "28P01", `password authentication failed for user "mallory"`},
		{"another's token", "alice", bobToken, "app-db", "28P01", `password authentication failed for user "alice"`},
		{"empty token", "alice", "", "app-db", "28P01", `password authentication failed for user "alice"`},
		{"forbidden connection", "bob", bobToken, "app-db", "28000", `connection "app-db" does not exist or you may not use it`},
		{"unknown connection", "bob", bobToken, "nope-db", "28000", `connection "nope-db" does not exist or you may not use it`},
		{"upstream down", "alice", aliceToken, "down-db", "08006", `gatewayd could not connect to "down-db"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pgconn.Connect(context.Background(), fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=require", c.user, c.token, e.addr, c.conn))
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("err = %v, want a PostgreSQL error", err)
			}
			if pgErr.Code != c.code || pgErr.Message != c.msg {
				t.Fatalf("got %s %q, want %s %q", pgErr.Code, pgErr.Message, c.code, c.msg)
			}
			for _, leak := range []string{appPassword, md5Password, pgSCRAM.Addr(), strconv.Itoa(pgSCRAM.Port())} {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("client error %q discloses %q", err, leak)
				}
			}
		})
	}
	// psql shows the same.
	out, err := e.psql("wrong", e.conninfo("alice", "app-db", "require"), "-c", "SELECT 1")
	if err == nil || !strings.Contains(out, `password authentication failed for user "alice"`) {
		t.Fatalf("psql with a wrong token: %v %q", err, out)
	}
}

func TestCleartextRefusedWithoutTLS(t *testing.T) {
	e := startGateway(t, "")
	out, err := e.psql(aliceToken, e.conninfo("alice", "app-db", "disable"), "-c", "SELECT 1")
	if err == nil || !strings.Contains(out, "requires an encrypted connection") {
		t.Fatalf("sslmode=disable: %v %q", err, out)
	}
	e2 := startGateway(t, "allow_cleartext_password = true")
	out, err = e2.psql(aliceToken, e2.conninfo("alice", "app-db", "disable"), "-c", "SELECT 1")
	if err != nil || out != "1" {
		t.Fatalf("allow_cleartext_password: %v %q", err, out)
	}
}

func TestCopyBothWays(t *testing.T) {
	e := startGateway(t, "")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var b strings.Builder
	for i := 1; i <= 5000; i++ {
		fmt.Fprintf(&b, "%d,name %d\n", i, i)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	e.mustPSQL("-c", "CREATE TEMP TABLE t (id int, name text)",
		"-c", fmt.Sprintf(`\copy t FROM '%s' WITH (FORMAT csv)`, in),
		"-c", fmt.Sprintf(`\copy t TO '%s' WITH (FORMAT csv)`, out))
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != b.String() {
		t.Fatalf("COPY round trip differs: %d bytes in, %d out", b.Len(), len(got))
	}
}

func TestPGBench(t *testing.T) {
	e := startGateway(t, "")
	bench := filepath.Join(pgSCRAM.BinDir(), "pgbench")
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		host, port, _ := net.SplitHostPort(e.addr)
		all := append([]string{"-h", host, "-p", port, "-U", "alice"}, args...)
		all = append(all, "app-db")
		cmd := exec.CommandContext(ctx, bench, all...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+aliceToken, "PGSSLMODE=require", "PGGSSENCMODE=disable")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("-i", "-s", "1", "-q")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		out := run("-S", "-M", mode, "-c", "4", "-j", "2", "-t", "200")
		if !strings.Contains(out, "number of transactions actually processed: 800/800") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
		out = run("-M", mode, "-c", "2", "-t", "50")
		if !strings.Contains(out, "number of transactions actually processed: 100/100") {
			t.Fatalf("pgbench tpcb -M %s:\n%s", mode, out)
		}
	}
}

func TestPGXExtendedProtocolNotificationsAndCancel(t *testing.T) {
	e := startGateway(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := fmt.Sprintf("postgres://alice:%s@%s/app-db?sslmode=require&application_name=gwtest", aliceToken, e.addr)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var name string
	if err := conn.QueryRow(ctx, "SELECT name FROM customers WHERE id = $1", 42).Scan(&name); err != nil || name != "customer 42" {
		t.Fatalf("extended query: %v %q", err, name)
	}
	var app string
	if err := conn.QueryRow(ctx, "SHOW application_name").Scan(&app); err != nil || app != "gwtest" {
		t.Fatalf("application_name passed upstream: %v %q", err, app)
	}
	// A batch pipelines many Parse/Bind/Execute before one Sync.
	batch := &pgx.Batch{}
	for i := 1; i <= 50; i++ {
		batch.Queue("SELECT email FROM customers WHERE id = $1", i)
	}
	br := conn.SendBatch(ctx, batch)
	for i := 1; i <= 50; i++ {
		var email string
		if err := br.QueryRow().Scan(&email); err != nil || email != fmt.Sprintf("c%d@example.com", i) {
			t.Fatalf("batch row %d: %v %q", i, err, email)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// LISTEN/NOTIFY across two sessions.
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN gwtest"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "NOTIFY gwtest, 'hello'"); err != nil {
		t.Fatal(err)
	}
	n, err := conn.WaitForNotification(ctx)
	if err != nil || n.Channel != "gwtest" || n.Payload != "hello" {
		t.Fatalf("notification: %v %+v", err, n)
	}

	// Cancel: pgx sends a CancelRequest with the gateway-issued key when
	// the context ends; the gateway routes it to the real backend.
	qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer qcancel()
	start := time.Now()
	_, err = conn.Exec(qctx, "SELECT pg_sleep(30)")
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled query: %v after %v", err, time.Since(start))
	}
	// The session survives the cancel (pgx closes the connection after a
	// cancelled query, so use the other one).
	var one int
	if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after cancel: %v", err)
	}
	// The gateway's log line, or the plugin's (go-plugin's JSON shape).
	if logs := e.logs.String(); !strings.Contains(logs, `"msg":"session started"`) && !strings.Contains(logs, `"@message":"session started"`) {
		t.Fatal("no session log line")
	}
}

func TestCancelRequestRoutesOnlyIssuedKeys(t *testing.T) {
	e := startGateway(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://alice:%s@%s/app-db?sslmode=require", aliceToken, e.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The client sees the gateway's key, not the upstream backend's.
	var upstreamPID string
	res := conn.Exec(ctx, "SELECT pg_backend_pid()")
	rs, err := res.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	upstreamPID = string(rs[0].Rows[0][0])
	if strconv.FormatUint(uint64(conn.PID()), 10) == upstreamPID {
		t.Fatalf("client got the upstream backend pid %s", upstreamPID)
	}

	// A guessed key cancels nothing.
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(2)").ReadAll()
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	sendRawCancel(t, e.addr, conn.PID(), []byte{1, 2, 3, 4})
	sendRawCancel(t, e.addr, conn.PID()^1, conn.SecretKey())
	if err := <-done; err != nil {
		t.Fatalf("guessed cancel keys cancelled the query: %v", err)
	}
	// The issued key does.
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	sendRawCancel(t, e.addr, conn.PID(), conn.SecretKey())
	var pgErr *pgconn.PgError
	if err := <-done; !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("issued cancel key: %v, want 57014", err)
	}
	if !strings.Contains(e.logs.String(), "cancel request with a key gatewayd did not issue") {
		t.Fatal("guessed key not logged")
	}
}

func sendRawCancel(t *testing.T, addr string, pid uint32, key []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, err := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: key}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.ReadAll(c)
}

// rawDial opens a TCP connection to the gateway.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func startupPacket(params ...string) []byte {
	body := binary.BigEndian.AppendUint32(nil, 196608)
	for _, p := range params {
		body = append(body, p...)
		body = append(body, 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

// readError reads until an ErrorResponse and returns it, or fails.
func readError(t *testing.T, r io.Reader) *pgproto3.ErrorResponse {
	t.Helper()
	fe := pgproto3.NewFrontend(r, io.Discard)
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("reading an ErrorResponse: %v", err)
		}
		if er, ok := msg.(*pgproto3.ErrorResponse); ok {
			return er
		}
	}
}

func TestBadInputGetsProtocolErrors(t *testing.T) {
	e := startGateway(t, "")
	tlsConn := func(t *testing.T) net.Conn {
		c := rawDial(t, e.addr)
		if _, err := c.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'S' {
			t.Fatalf("SSLRequest answer %q %v", b, err)
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc
	}
	// login runs the startup as alice and returns a connection at
	// ReadyForQuery.
	login := func(t *testing.T) (net.Conn, *pgproto3.Frontend) {
		c := tlsConn(t)
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: 196608, Parameters: map[string]string{"user": "alice", "database": "app-db"}})
		fe.Send(&pgproto3.PasswordMessage{Password: aliceToken})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				return c, fe
			}
		}
	}

	t.Run("garbage instead of startup", func(t *testing.T) {
		c := rawDial(t, e.addr)
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Fatalf("gateway answered garbage with %q", b)
		}
	})
	t.Run("negative startup length", func(t *testing.T) {
		c := rawDial(t, e.addr)
		_, _ = c.Write([]byte{0xff, 0xff, 0xff, 0xf0, 0, 3, 0, 0})
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Fatalf("answered %q", b)
		}
	})
	t.Run("plaintext after SSLRequest", func(t *testing.T) {
		c := rawDial(t, e.addr)
		_, _ = c.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47})
		b := make([]byte, 1)
		_, _ = io.ReadFull(c, b)
		_, _ = c.Write(startupPacket("user", "alice", "database", "app-db"))
		rest, _ := io.ReadAll(c)
		if bytes.Contains(rest, []byte("R")) && len(rest) > 0 && rest[0] == 'R' {
			t.Fatalf("gateway continued in plaintext after TLS was agreed: %q", rest)
		}
	})
	t.Run("GSSENCRequest refused then TLS", func(t *testing.T) {
		c := rawDial(t, e.addr)
		_, _ = c.Write([]byte{0, 0, 0, 8, 4, 210, 22, 48})
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'N' {
			t.Fatalf("GSSENCRequest answer %q %v", b, err)
		}
	})
	t.Run("no TLS before password", func(t *testing.T) {
		c := rawDial(t, e.addr)
		_, _ = c.Write(startupPacket("user", "alice", "database", "app-db"))
		if er := readError(t, c); er.Code != "28000" {
			t.Fatalf("got %s %s", er.Code, er.Message)
		}
	})
	t.Run("replication refused", func(t *testing.T) {
		c := tlsConn(t)
		_, _ = c.Write(startupPacket("user", "alice", "database", "app-db", "replication", "true"))
		if er := readError(t, c); er.Code != "0A000" {
			t.Fatalf("got %s %s", er.Code, er.Message)
		}
	})
	t.Run("oversized message", func(t *testing.T) {
		c, _ := login(t)
		_, _ = c.Write([]byte{'Q', 0x7f, 0xff, 0xff, 0xff})
		if er := readError(t, c); er.Code != "08P01" || !strings.Contains(er.Message, "max_message_bytes") {
			t.Fatalf("got %s %s", er.Code, er.Message)
		}
	})
	t.Run("negative message length", func(t *testing.T) {
		c, _ := login(t)
		_, _ = c.Write([]byte{'Q', 0xff, 0xff, 0xff, 0xfe})
		if er := readError(t, c); er.Code != "08P01" {
			t.Fatalf("got %s %s", er.Code, er.Message)
		}
	})
	t.Run("second StartupMessage", func(t *testing.T) {
		c, _ := login(t)
		_, _ = c.Write(startupPacket("user", "alice", "database", "app-db"))
		if er := readError(t, c); er.Code != "08P01" {
			t.Fatalf("got %s %s", er.Code, er.Message)
		}
	})
	t.Run("client disconnects mid-COPY", func(t *testing.T) {
		c, fe := login(t)
		fe.Send(&pgproto3.Query{String: "CREATE TEMP TABLE c (v text); COPY c FROM STDIN"})
		_ = fe.Flush()
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := msg.(*pgproto3.CopyInResponse); ok {
				break
			}
		}
		fe.Send(&pgproto3.CopyData{Data: []byte("half a row")})
		_ = fe.Flush()
		_ = c.Close()
	})
	// Through all of it the gateway keeps serving.
	if out := e.mustPSQL("-c", "SELECT 42"); out != "42" {
		t.Fatalf("after bad input: %q", out)
	}
}

func TestUpstreamCredentialNeverLeaks(t *testing.T) {
	e := startGateway(t, "")
	e.mustPSQL("-c", "SELECT 1")
	_, _ = e.psql(aliceToken, e.conninfo("alice", "legacy-db", "require"), "-c", "SELECT 1")
	for _, c := range []struct{ user, tok, conn string }{
		{"alice", "bad", "app-db"}, {"bob", bobToken, "app-db"}, {"alice", aliceToken, "down-db"},
	} {
		out, _ := e.psql(c.tok, e.conninfo(c.user, c.conn, "require"), "-c", "SELECT 1")
		assertNoSecret(t, "client output", out)
	}
	e.closeAndOpenStore()
	assertNoSecret(t, "gateway logs", e.logs.String())
	err := filepath.WalkDir(e.dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertNoSecret(t, path, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func assertNoSecret(t *testing.T, where, s string) {
	t.Helper()
	for _, secret := range []string{appPassword, md5Password, aliceToken, bobToken} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains a credential", where)
		}
	}
}
