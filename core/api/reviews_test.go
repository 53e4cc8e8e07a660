package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/review"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
)

const daveToken = "gwt_dave-token"

// reviewServer serves the API with a real review service on SQLite:
// alice and bob are developers, dave a reviewer (dba), root an admin.
func reviewServer(t *testing.T) *httptest.Server {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	aw, err := audit.NewWriter(context.Background(), st, slog.New(slog.DiscardHandler), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aw.Close(context.Background()); _ = st.Close() })
	cfg, err := config.Parse("/etc/gatewayd/gateway.toml", []byte(`
[listen.postgres]
address = "127.0.0.1:0"

[[connection]]
name = "jit-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
secret = "env:X"
allow_groups = ["dev"]
require_approval = true
reviewers = ["dba"]
`))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := identity.NewDirectory([]config.StaticIdentity{
		{Name: "alice", Groups: []string{"dev"}, TokenSHA256: sum(aliceToken)},
		{Name: "bob", Groups: []string{"dev"}, TokenSHA256: sum(bobToken)},
		{Name: "dave", Groups: []string{"dba"}, TokenSHA256: sum(daveToken)},
		{Name: "root", Groups: []string{"admins"}, TokenSHA256: sum(rootToken)},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{
		Store: st, Tokens: dir, AdminGroups: []string{"admins"}, Logger: slog.New(slog.DiscardHandler),
		Reviews: review.New(review.Options{Store: st, Audit: aw, Config: cfg}),
	}))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, token, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	if resp.StatusCode >= 400 {
		var e api.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: error body %q is not JSON", method, path, data)
		}
	}
	return resp.StatusCode
}

func TestReviewRoutes(t *testing.T) {
	srv := reviewServer(t)
	for _, tc := range []struct {
		token, body string
		want        int
	}{
		{aliceToken, `{"connection": "jit-db", "duration": "forever", "reason": "x"}`, 400},
		{aliceToken, `{"connection": "jit-db", "duration": "1h", "reason": "x", "extra": 1}`, 400},
		{aliceToken, `{"connection": "jit-db", "duration": "100h", "reason": "x"}`, 400},
		{daveToken, `{"connection": "jit-db", "duration": "1h", "reason": "x"}`, 404}, // not in allow_groups
		{aliceToken, `{"connection": "nope", "duration": "1h", "reason": "x"}`, 404},
		{"", `{"connection": "jit-db", "duration": "1h", "reason": "x"}`, 401},
	} {
		if got := call(t, srv, tc.token, "POST", "/v1/requests", tc.body, nil); got != tc.want {
			t.Errorf("POST /v1/requests %s: %d, want %d", tc.body, got, tc.want)
		}
	}
	var r api.Review
	if st := call(t, srv, aliceToken, "POST", "/v1/requests", `{"connection": "jit-db", "duration": "1h", "reason": "INC-4211"}`, &r); st != 201 {
		t.Fatalf("request: %d", st)
	}
	if r.Status != "pending" || r.Identity != "alice" || r.Kind != "access" || r.CanDecide {
		t.Fatalf("request = %+v", r)
	}
	for _, tc := range []struct {
		token     string
		n         int
		canDecide bool
	}{{aliceToken, 1, false}, {daveToken, 1, true}, {bobToken, 0, false}, {rootToken, 1, false}} {
		var list api.ReviewList
		if st := call(t, srv, tc.token, "GET", "/v1/reviews?status=pending", "", &list); st != 200 || len(list.Reviews) != tc.n ||
			tc.n > 0 && list.Reviews[0].CanDecide != tc.canDecide {
			t.Errorf("list as %s: %d %+v", tc.token, st, list)
		}
	}
	if st := call(t, srv, bobToken, "GET", "/v1/reviews/"+r.ID, "", nil); st != 404 {
		t.Errorf("bob reading alice's request: %d", st)
	}
	for _, tc := range []struct {
		token, verb, body string
		want              int
	}{
		{aliceToken, "approve", "{}", 403}, // her own
		{bobToken, "approve", "{}", 404},   // cannot see it
		{rootToken, "approve", "{}", 403},  // an admin, not a reviewer
		{daveToken, "deny", `{"reason": 5}`, 400},
		{daveToken, "approve", "", 200},
		{daveToken, "approve", "{}", 409},
		{daveToken, "deny", `{"reason": "late"}`, 409},
	} {
		if got := call(t, srv, tc.token, "POST", "/v1/reviews/"+r.ID+"/"+tc.verb, tc.body, nil); got != tc.want {
			t.Errorf("%s by %s: %d, want %d", tc.verb, tc.token, got, tc.want)
		}
	}
	if st := call(t, srv, daveToken, "GET", "/v1/reviews/"+r.ID+"/approve", "", nil); st != 405 {
		t.Errorf("GET approve: %d, want 405", st)
	}
	if st := call(t, srv, aliceToken, "GET", "/v1/reviews/"+r.ID, "", &r); st != 200 || r.Status != "approved" || r.Expires.IsZero() {
		t.Errorf("approved request: %d %+v", st, r)
	}
}
