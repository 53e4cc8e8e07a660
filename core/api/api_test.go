package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite/sqlitetest"
)

// Tokens of the test identities: alice and bob are developers, root is an
// admin.
const (
	aliceToken = "gwt_alice-token"
	bobToken   = "gwt_bob-token"
	rootToken  = "gwt_root-token"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

type fixture struct {
	t      *testing.T
	path   string
	st     *sqlite.Store
	health error
	srv    *httptest.Server
}

func sum(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// newFixture opens a real SQLite store in a temporary directory, fills it
// through a real audit writer and serves the API on it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "state.db")}
	st, err := sqlite.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st

	dir, err := identity.NewDirectory([]config.StaticIdentity{
		{Name: "alice", Email: "alice@example.com", Groups: []string{"dev"}, TokenSHA256: sum(aliceToken)},
		{Name: "bob", Email: "bob@example.com", Groups: []string{"dev"}, TokenSHA256: sum(bobToken)},
		{Name: "root", Email: "root@example.com", Groups: []string{"dev", "admins"}, TokenSHA256: sum(rootToken)},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "gatewayd_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)

	f.srv = httptest.NewServer(api.New(api.Options{
		Store:       st,
		Tokens:      dir,
		AdminGroups: []string{"admins"},
		Gatherer:    reg,
		Health:      func() error { return f.health },
		Logger:      slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// seed records three sessions (two of alice, one of bob) and their events.
func (f *fixture) seed() {
	t := f.t
	t.Helper()
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, f.st, slog.New(slog.DiscardHandler), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	sessions := []store.Session{
		{ID: "s-alice-1", Protocol: "postgres", Connection: "app-db", Identity: "alice", Email: "alice@example.com",
			ClientAddr: "127.0.0.1:50001", Started: t0, Requests: 3},
		{ID: "s-bob-1", Protocol: "postgres", Connection: "app-db", Identity: "bob", Email: "bob@example.com",
			ClientAddr: "127.0.0.1:50002", Started: t0.Add(time.Minute), Requests: 1},
		{ID: "s-alice-2", Protocol: "postgres", Connection: "reports", Identity: "alice", Email: "alice@example.com",
			ClientAddr: "127.0.0.1:50003", Started: t0.Add(time.Hour)},
	}
	for _, s := range sessions {
		if err := f.st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		f.append(w, audit.Record{Time: s.Started, Kind: audit.KindSessionStart, SessionID: s.ID, Identity: s.Identity,
			Connection: s.Connection, Data: audit.SessionStartData{Protocol: s.Protocol, ClientAddr: s.ClientAddr}})
	}
	reqs := []audit.RequestData{
		{Kind: "query", Text: "SELECT * FROM customers", Started: t0.Add(time.Second), Duration: int64(1500 * time.Microsecond),
			Rows: 3, Outcome: "ok", Tag: "SELECT 3"},
		{Kind: "query", Text: "SELECT * FROM nope", Started: t0.Add(2 * time.Second), Duration: int64(300 * time.Microsecond),
			Rows: 0, Outcome: "error", ErrorCode: "42P01", ErrorMessage: `relation "nope" does not exist`},
		{Kind: "execute", Text: "SELECT pg_sleep($1)", Started: t0.Add(3 * time.Second), Duration: int64(2 * time.Second),
			Rows: -1, Outcome: "interrupted"},
	}
	for _, d := range reqs {
		f.append(w, audit.Record{Time: d.Started, Kind: audit.KindRequest, SessionID: "s-alice-1", Identity: "alice",
			Connection: "app-db", Data: d})
	}
	f.append(w, audit.Record{Time: t0.Add(time.Minute + time.Second), Kind: audit.KindRequest, SessionID: "s-bob-1",
		Identity: "bob", Connection: "app-db", Data: audit.RequestData{Kind: "query", Text: "SELECT 1", Rows: 1, Outcome: "ok"}})
	end := store.SessionEnd{ID: "s-alice-1", Ended: t0.Add(5 * time.Second), Reason: "client closed", BytesIn: 100, BytesOut: 2000, Requests: 3}
	if err := f.st.EndSession(ctx, end); err != nil {
		t.Fatal(err)
	}
	f.append(w, audit.Record{Time: end.Ended, Kind: audit.KindSessionEnd, SessionID: "s-alice-1", Identity: "alice",
		Connection: "app-db", Data: audit.SessionEndData{Reason: end.Reason, BytesIn: 100, BytesOut: 2000, Requests: 3}})
}

func (f *fixture) append(w *audit.Writer, r audit.Record) {
	f.t.Helper()
	if err := w.AppendSync(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
}

// tamper edits a stored event behind the store's back, as someone with
// write access to the database file could.
func (f *fixture) tamper(seq int64) {
	f.t.Helper()
	sqlitetest.EditEvent(f.t, f.path, seq, func(ev *store.Event) {
		ev.Data = bytes.ReplaceAll(ev.Data, []byte("SELECT"), []byte("DELETE"))
	})
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) do(method, path, token string) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return f.send(req)
}

func (f *fixture) send(req *http.Request) response {
	f.t.Helper()
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fixture) get(path, token string, wantStatus int, out any) response {
	f.t.Helper()
	r := f.do(http.MethodGet, path, token)
	if r.status != wantStatus {
		f.t.Fatalf("GET %s: status %d, want %d; body %s", path, r.status, wantStatus, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			f.t.Fatalf("GET %s: decoding %s: %v", path, r.body, err)
		}
	}
	return r
}

func errorOf(t *testing.T, r response) string {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...} (%v)", r.body, err)
	}
	return e.Error
}

func TestUnauthorized(t *testing.T) {
	f := newFixture(t)
	f.seed()
	tests := []struct {
		name   string
		header []string // Authorization header values
	}{
		{"no header", nil},
		{"empty bearer", []string{"Bearer "}},
		{"wrong token", []string{"Bearer gwt_wrong"}},
		{"token of nobody, lower-case scheme", []string{"bearer gwt_nobody"}},
		{"basic scheme with a valid token", []string{"Basic " + aliceToken}},
		{"bare token", []string{aliceToken}},
		{"two headers", []string{"Bearer " + aliceToken, "Bearer " + aliceToken}},
	}
	var msg string
	for _, tc := range tests {
		for _, path := range []string{"/v1/whoami", "/v1/sessions", "/v1/sessions/s-alice-1", "/v1/audit/verify", "/v1/audit/export"} {
			t.Run(tc.name+path, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
				for _, v := range tc.header {
					req.Header.Add("Authorization", v)
				}
				r := f.send(req)
				if r.status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401; body %s", r.status, r.body)
				}
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				m := errorOf(t, r)
				if msg == "" {
					msg = m
				} else if m != msg {
					t.Errorf("message %q differs from %q: a caller can tell failures apart", m, msg)
				}
				for _, tok := range []string{"gwt_", "alice", "nobody", "wrong"} {
					if bytes.Contains(r.body, []byte(tok)) {
						t.Errorf("body %s echoes %q", r.body, tok)
					}
				}
			})
		}
	}
}

func TestWhoami(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		token string
		want  api.Whoami
	}{
		{aliceToken, api.Whoami{Name: "alice", Email: "alice@example.com", Groups: []string{"dev"}}},
		{rootToken, api.Whoami{Name: "root", Email: "root@example.com", Groups: []string{"dev", "admins"}, Admin: true}},
	}
	for _, tc := range tests {
		t.Run(tc.want.Name, func(t *testing.T) {
			var got api.Whoami
			f.get("/v1/whoami", tc.token, http.StatusOK, &got)
			if got.Name != tc.want.Name || got.Email != tc.want.Email || got.Admin != tc.want.Admin ||
				strings.Join(got.Groups, ",") != strings.Join(tc.want.Groups, ",") {
				t.Errorf("whoami = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func ids(l api.SessionList) string {
	var s []string
	for _, x := range l.Sessions {
		s = append(s, x.ID)
	}
	return strings.Join(s, ",")
}

func TestSessionsVisibility(t *testing.T) {
	f := newFixture(t)
	f.seed()
	tests := []struct {
		name  string
		token string
		query string
		want  string // ids, newest first
	}{
		{"alice sees her own", aliceToken, "", "s-alice-2,s-alice-1"},
		{"alice asking for bob sees nothing", aliceToken, "?identity=bob", ""},
		{"alice asking for herself", aliceToken, "?identity=alice", "s-alice-2,s-alice-1"},
		{"alice with a limit", aliceToken, "?limit=1", "s-alice-2"},
		{"bob sees his own", bobToken, "", "s-bob-1"},
		{"admin sees all", rootToken, "", "s-alice-2,s-bob-1,s-alice-1"},
		{"admin filters by identity", rootToken, "?identity=bob", "s-bob-1"},
		{"admin with a limit", rootToken, "?limit=2", "s-alice-2,s-bob-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l api.SessionList
			r := f.get("/v1/sessions"+tc.query, tc.token, http.StatusOK, &l)
			if got := ids(l); got != tc.want {
				t.Errorf("sessions = %q, want %q", got, tc.want)
			}
			if l.Sessions == nil {
				t.Errorf("sessions is null, want a list: %s", r.body)
			}
		})
	}

	var l api.SessionList
	f.get("/v1/sessions", rootToken, http.StatusOK, &l)
	byID := map[string]api.Session{}
	for _, s := range l.Sessions {
		byID[s.ID] = s
	}
	if s := byID["s-alice-1"]; s.Open() || !s.Ended.Equal(t0.Add(5*time.Second)) || s.EndReason != "client closed" ||
		s.BytesOut != 2000 || s.Requests != 3 || s.ClientAddr != "127.0.0.1:50001" {
		t.Errorf("ended session = %+v", s)
	}
	if s := byID["s-alice-2"]; !s.Open() {
		t.Errorf("open session = %+v, want open", s)
	}

	for _, q := range []string{"?limit=0", "?limit=abc", "?limit=100000", "?limit=-1"} {
		r := f.get("/v1/sessions"+q, aliceToken, http.StatusBadRequest, nil)
		errorOf(t, r)
	}
}

func TestSessionDetail(t *testing.T) {
	f := newFixture(t)
	f.seed()

	var d api.SessionDetail
	f.get("/v1/sessions/s-alice-1", aliceToken, http.StatusOK, &d)
	if d.Session.ID != "s-alice-1" || d.Session.Identity != "alice" {
		t.Errorf("session = %+v", d.Session)
	}
	want := []struct {
		text, outcome, code string
		rows                int64
		dur                 time.Duration
	}{
		{"SELECT * FROM customers", "ok", "", 3, 1500 * time.Microsecond},
		{"SELECT * FROM nope", "error", "42P01", 0, 300 * time.Microsecond},
		{"SELECT pg_sleep($1)", "interrupted", "", -1, 2 * time.Second},
	}
	if len(d.Statements) != len(want) {
		t.Fatalf("%d statements, want %d: %+v", len(d.Statements), len(want), d.Statements)
	}
	for i, w := range want {
		s := d.Statements[i]
		if s.Text != w.text || s.Outcome != w.outcome || s.ErrorCode != w.code || s.Rows != w.rows ||
			time.Duration(s.Duration) != w.dur || !s.Started.Equal(t0.Add(time.Duration(i+1)*time.Second)) {
			t.Errorf("statement %d = %+v, want %+v", i, s, w)
		}
		if i > 0 && s.Seq <= d.Statements[i-1].Seq {
			t.Errorf("statements out of order: %d after %d", s.Seq, d.Statements[i-1].Seq)
		}
	}
	if d.Statements[0].Tag != "SELECT 3" || d.Statements[1].ErrorMessage != `relation "nope" does not exist` {
		t.Errorf("tag/message: %+v", d.Statements)
	}

	// An open session without statements has an empty list, not null.
	var open api.SessionDetail
	r := f.get("/v1/sessions/s-alice-2", aliceToken, http.StatusOK, &open)
	if !bytes.Contains(r.body, []byte(`"statements":[]`)) || !open.Session.Open() {
		t.Errorf("open session without statements: %s", r.body)
	}

	// Someone else's session looks exactly like a missing one.
	other := f.get("/v1/sessions/s-bob-1", aliceToken, http.StatusNotFound, nil)
	missing := f.get("/v1/sessions/no-such-id", aliceToken, http.StatusNotFound, nil)
	if !bytes.Equal(other.body, missing.body) {
		t.Errorf("someone else's session %s differs from a missing one %s", other.body, missing.body)
	}
	f.get("/v1/sessions/no-such-id", rootToken, http.StatusNotFound, nil)

	// The admin sees bob's session and its statement.
	var bob api.SessionDetail
	f.get("/v1/sessions/s-bob-1", rootToken, http.StatusOK, &bob)
	if len(bob.Statements) != 1 || bob.Statements[0].Text != "SELECT 1" {
		t.Errorf("bob's session seen by the admin: %+v", bob)
	}
}

func TestAdminOnly(t *testing.T) {
	f := newFixture(t)
	f.seed()
	for _, path := range []string{"/v1/audit/verify", "/v1/audit/export"} {
		r := f.get(path, aliceToken, http.StatusForbidden, nil)
		errorOf(t, r)
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)

	var v api.VerifyResult
	f.get("/v1/audit/verify", rootToken, http.StatusOK, &v)
	if !v.OK || v.Events != 0 {
		t.Errorf("empty log: %+v", v)
	}

	f.seed()
	f.get("/v1/audit/verify", rootToken, http.StatusOK, &v)
	if !v.OK || v.Events != 8 || v.LastSeq != 8 || len(v.LastHash) != 64 || v.FirstBroken != 0 {
		t.Errorf("intact log: %+v", v)
	}

	f.tamper(5) // the second statement of s-alice-1
	f.get("/v1/audit/verify", rootToken, http.StatusOK, &v)
	if v.OK || v.FirstBroken != 5 || !strings.Contains(v.Reason, "hash mismatch") || v.LastSeq != 4 {
		t.Errorf("tampered log: %+v", v)
	}
}

func TestExportRoundTrip(t *testing.T) {
	f := newFixture(t)

	r := f.get("/v1/audit/export", rootToken, http.StatusOK, nil)
	if len(r.body) != 0 {
		t.Errorf("empty log exported %q", r.body)
	}

	f.seed()
	r = f.get("/v1/audit/export", rootToken, http.StatusOK, nil)
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q", ct)
	}
	if n := bytes.Count(r.body, []byte("\n")); n != 8 {
		t.Errorf("export has %d lines, want 8", n)
	}
	res, err := audit.VerifyStream(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Events != 8 {
		t.Errorf("VerifyStream(export) = %+v", res)
	}
	var v api.VerifyResult
	f.get("/v1/audit/verify", rootToken, http.StatusOK, &v)
	if res.LastHash != v.LastHash {
		t.Errorf("export ends at %s, the store at %s", res.LastHash, v.LastHash)
	}

	// An edited export line breaks the chain offline.
	edited := bytes.Replace(r.body, []byte("SELECT * FROM customers"), []byte("SELECT * FROM customerz"), 1)
	res, err = audit.VerifyStream(bytes.NewReader(edited))
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.FirstBroken != 4 {
		t.Errorf("VerifyStream(edited export) = %+v", res)
	}

	// Filters narrow the export.
	r = f.get("/v1/audit/export?session_id=s-alice-1&kind=request", rootToken, http.StatusOK, nil)
	if n := bytes.Count(r.body, []byte("\n")); n != 3 {
		t.Errorf("filtered export has %d lines, want 3:\n%s", n, r.body)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	f := newFixture(t)

	r := f.get("/healthz", "", http.StatusOK, nil)
	if string(r.body) != "ok\n" {
		t.Errorf("healthz body %q", r.body)
	}
	f.health = errors.New("audit: log unavailable: disk full")
	r = f.get("/healthz", "", http.StatusServiceUnavailable, nil)
	if !strings.Contains(string(r.body), "disk full") {
		t.Errorf("unhealthy body %q does not say why", r.body)
	}

	r = f.get("/metrics", "", http.StatusOK, nil)
	if !strings.Contains(string(r.body), "gatewayd_test_total 3") {
		t.Errorf("metrics do not serve the gatherer:\n%s", r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics Content-Type = %q", ct)
	}
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/v1/whoami", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1/sessions/x", http.StatusMethodNotAllowed},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nothing", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			r := f.do(tc.method, tc.path, aliceToken)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			errorOf(t, r)
		})
	}
}

func TestNewServer(t *testing.T) {
	s := api.NewServer("127.0.0.1:0", http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 || s.Addr != "127.0.0.1:0" {
		t.Errorf("server lacks limits: %+v", s)
	}
}

// setData overwrites the stored data of event seq.
func (f *fixture) setData(seq int64, data string) {
	f.t.Helper()
	sqlitetest.EditEvent(f.t, f.path, seq, func(ev *store.Event) { ev.Data = []byte(data) })
}

func TestDamagedEvents(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.setData(5, `not json`) // the second statement of s-alice-1

	// The session is still shown; the damaged statement says so.
	var d api.SessionDetail
	f.get("/v1/sessions/s-alice-1", aliceToken, http.StatusOK, &d)
	if len(d.Statements) != 3 || d.Statements[1].Outcome != "unknown" || d.Statements[2].Text != "SELECT pg_sleep($1)" {
		t.Errorf("statements around a damaged event: %+v", d.Statements)
	}

	var v api.VerifyResult
	f.get("/v1/audit/verify", rootToken, http.StatusOK, &v)
	if v.OK || v.FirstBroken != 5 {
		t.Errorf("verify = %+v", v)
	}

	// Export cannot embed it; it fails before sending anything: a 500.
	r := f.get("/v1/audit/export", rootToken, http.StatusInternalServerError, nil)
	errorOf(t, r)
}

// TestExportBreaksOff: an export that fails after it has started streaming
// cannot change its status any more; the connection is cut so that the
// client sees a truncated body, never one that looks complete.
func TestExportBreaksOff(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, f.st, slog.New(slog.DiscardHandler), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", 400)
	const n = 400 // well over the export's 64 KiB buffer
	for i := range n {
		if err := w.Append(ctx, audit.Record{Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: audit.KindRequest,
			SessionID: "s", Identity: "alice", Data: audit.RequestData{Text: text}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f.setData(n, `{"not": "compact"}`)

	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+rootToken)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("a broken-off export read cleanly (%d bytes)", len(b))
	}
	if len(b) == 0 || bytes.Count(b, []byte("\n")) >= n {
		t.Errorf("read %d bytes, %d lines before the error", len(b), bytes.Count(b, []byte("\n")))
	}
}
