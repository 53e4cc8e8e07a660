package login

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// memAudit collects audit records.
type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (m *memAudit) Append(_ context.Context, r audit.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return nil
}

func testService(t *testing.T, op *testOP) (*Service, *memAudit) {
	t.Helper()
	tokens, err := identity.OpenTokens(filepath.Join(t.TempDir(), "k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := testRP(t, op, nil)
	cfg := r.cfg
	cfg.LoginTimeout = config.Duration{Duration: 600e9}
	a := &memAudit{}
	s, err := New(Options{Config: cfg, ClientSecret: "s", HTTPClient: op.srv.Client(), Tokens: tokens, Audit: a})
	if err != nil {
		t.Fatal(err)
	}
	return s, a
}

// TestStartLimits: login starts need no credentials, so one address may
// have only so many in progress; the redirect must be a loopback URL.
func TestStartLimits(t *testing.T) {
	s, _ := testService(t, newTestOP(t))
	req := StartRequest{RedirectURI: "http://127.0.0.1:5000/callback", CodeChallenge: Challenge("v")}
	for i := range maxPendingPerClient {
		if _, err := s.Start(context.Background(), req, "192.0.2.1:1000"); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	_, err := s.Start(context.Background(), req, "192.0.2.1:2000")
	if err == nil || !strings.Contains(err.Error(), "too many logins in progress from 192.0.2.1") {
		t.Fatalf("start past the limit: %v", err)
	}
	if _, err := s.Start(context.Background(), req, "192.0.2.2:1000"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	for _, bad := range []StartRequest{
		{RedirectURI: "http://attacker.example:80/cb", CodeChallenge: Challenge("v")},
		{RedirectURI: "https://127.0.0.1:5000/cb", CodeChallenge: Challenge("v")},
		{RedirectURI: "http://127.0.0.1/cb", CodeChallenge: Challenge("v")},
		{RedirectURI: "http://127.0.0.1:5000/cb", CodeChallenge: "short"},
		{RedirectURI: "http://127.0.0.1:5000/cb", CodeChallenge: Challenge("v"), SSHPublicKey: "not a key"},
	} {
		if _, err := s.Start(context.Background(), bad, "192.0.2.3:1"); err == nil {
			t.Errorf("start %+v accepted", bad)
		}
	}
}

// TestCallbackRefusals: a callback of an unknown state, the provider's
// error, and a missing code, each audited with its reason.
func TestCallbackRefusals(t *testing.T) {
	s, a := testService(t, newTestOP(t))
	if _, err := s.Callback(context.Background(), map[string][]string{"state": {"nope"}, "code": {"c"}}); err == nil {
		t.Fatal("unknown state accepted")
	}
	start := func() string {
		resp, err := s.Start(context.Background(), StartRequest{RedirectURI: "http://127.0.0.1:5000/cb", CodeChallenge: Challenge("v")}, "192.0.2.1:1")
		if err != nil {
			t.Fatal(err)
		}
		return resp.AuthURL[strings.Index(resp.AuthURL, "state=")+6:][:32]
	}
	to, err := s.Callback(context.Background(), map[string][]string{"state": {start()}, "error": {"access_denied"}, "error_description": {"user said no"}})
	if err != nil || !strings.Contains(to, "error=the+identity+provider+answered+access_denied%3A+user+said+no") {
		t.Fatalf("provider error: %q %v", to, err)
	}
	to, err = s.Callback(context.Background(), map[string][]string{"state": {start()}})
	if err != nil || !strings.Contains(to, "sent+no+authorization+code") {
		t.Fatalf("no code: %q %v", to, err)
	}
	var reasons []string
	for _, r := range a.recs {
		if r.Kind == audit.KindLoginFailed {
			reasons = append(reasons, r.Data.(audit.LoginData).Reason)
		}
	}
	if len(reasons) != 3 {
		t.Fatalf("login.failed reasons: %q", reasons)
	}
	if n := testutil.ToFloat64(s.logins.WithLabelValues("browser", "refused")); n != 3 {
		t.Fatalf("gatewayd_logins_total{browser,refused} = %v, want 3", n)
	}
}

// TestLogoutWhenTheStoreFails: a logout whose revocation cannot be
// recorded still revokes the token in this gateway, and says what went
// wrong instead of calling the token invalid.
func TestLogoutWhenTheStoreFails(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gatewayd.db"))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := identity.OpenTokens(filepath.Join(t.TempDir(), "k"), st)
	if err != nil {
		t.Fatal(err)
	}
	op := newTestOP(t)
	r, _ := testRP(t, op, nil)
	s, err := New(Options{Config: r.cfg, ClientSecret: "s", HTTPClient: op.srv.Client(), Tokens: tokens, Audit: &memAudit{}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := tokens.Issue("u1", protocol.Identity{Name: "alice@example.com", Groups: []string{"dev"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // the state store fails from now on

	req := httptest.NewRequest(http.MethodPost, "/v1/logout", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	s.Routes()["POST /v1/logout"].ServeHTTP(w, req)
	if w.Code == http.StatusUnauthorized || w.Code == http.StatusNoContent || !strings.Contains(w.Body.String(), "revocation") {
		t.Errorf("logout with a failing store: %d %s, want an error that names the revocation", w.Code, w.Body)
	}
	t.Logf("logout answered %d %s", w.Code, strings.TrimSpace(w.Body.String()))
	if _, err := tokens.Verify(tok); !errors.Is(err, identity.ErrTokenRevoked) {
		t.Fatalf("the token after a logout whose revocation was not stored: %v, want revoked", err)
	}
}

// TestWrongVerifierAudited: a one-time code redeemed with another
// verifier (someone saw the code) is burnt, and the refusal is audited
// with who the login was for, since the login itself was audited as
// successful at the callback.
func TestWrongVerifierAudited(t *testing.T) {
	s, a := testService(t, newTestOP(t))
	res := &Result{Token: "gwi_x", Name: "alice@example.com", Email: "alice@example.com"}
	for _, flow := range []string{"browser", "device"} {
		p := &pending{flow: flow, challenge: Challenge("right"), client: "192.0.2.1:1", expires: time.Now().Add(time.Minute),
			done: true, result: res}
		var err error
		if flow == "browser" {
			s.byCode["c1"] = p
			_, err = s.Finish(context.Background(), FinishRequest{Code: "c1", CodeVerifier: "wrong"}, "192.0.2.9:1")
		} else {
			s.byDeviceID["d1"] = p
			_, err = s.Poll(context.Background(), PollRequest{LoginID: "d1", CodeVerifier: "wrong"}, "192.0.2.9:1")
		}
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("%s: wrong verifier: %v", flow, err)
		}
	}
	var got []string
	for _, r := range a.recs {
		if r.Kind == audit.KindLoginFailed {
			d := r.Data.(audit.LoginData)
			got = append(got, d.Flow+" "+r.Identity+" "+d.Client+" "+d.Reason)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "browser alice@example.com 192.0.2.9:1 the code verifier does not match") ||
		!strings.Contains(got[1], "device alice@example.com 192.0.2.9:1") {
		t.Fatalf("login.failed events: %q", got)
	}
}
