package main

import (
	"context"
	"encoding/json"
	"log/slog"
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

const daveToken = "gwt_dave_ctl"

// reviewGateway serves the API with a real review service: alice asks,
// dave (dba) reviews.
func reviewGateway(t *testing.T) func(token string) map[string]string {
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
name = "app-db"
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
		{Name: "alice", Groups: []string{"dev"}, TokenSHA256: hexSum(aliceToken)},
		{Name: "dave", Groups: []string{"dba"}, TokenSHA256: hexSum(daveToken)},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Store: st, Tokens: dir, Logger: slog.New(slog.DiscardHandler),
		Reviews: review.New(review.Options{Store: st, Audit: aw, Config: cfg})}))
	t.Cleanup(srv.Close)
	return func(token string) map[string]string {
		return map[string]string{"GATEWAYD_ADDR": srv.URL, "GATEWAYD_TOKEN": token}
	}
}

func TestRequestAndReview(t *testing.T) {
	env := reviewGateway(t)
	runApp(t, env(aliceToken), "", "request", "app-db", "--reason", "x").check(t, 2, "", "--for must be a positive duration")
	runApp(t, env(aliceToken), "", "request", "app-db", "--for", "1h").check(t, 2, "", "--reason is required")
	runApp(t, env(aliceToken), "", "request", "nope", "--for", "1h", "--reason", "x").check(t, 1, "", "no such connection")

	r := runApp(t, env(aliceToken), "", "request", "app-db", "--for", "1h", "--reason", "INC-4211", "--json")
	r.check(t, 0, "", "")
	var rv api.Review
	if err := json.Unmarshal([]byte(r.stdout), &rv); err != nil || rv.Status != "pending" {
		t.Fatalf("request --json: %v %s", err, r.stdout)
	}
	r = runApp(t, env(daveToken), "", "review", "list")
	r.check(t, 0, "", "")
	if !strings.Contains(r.stdout, rv.ID) || !strings.Contains(r.stdout, "can decide") || !strings.Contains(r.stdout, "access for 1h0m0s: INC-4211") {
		t.Errorf("review list:\n%s", r.stdout)
	}
	r = runApp(t, env(daveToken), "", "review", "show", rv.ID)
	if r.code != 0 || !strings.Contains(r.stdout, "INC-4211") || !strings.Contains(r.stdout, "dba (1 approval(s) needed)") {
		t.Errorf("review show:\n%s%s", r.stdout, r.stderr)
	}
	runApp(t, env(aliceToken), "", "review", "approve", rv.ID).check(t, 1, "", "permission denied: review: a requester cannot decide their own request")
	runApp(t, env(daveToken), "", "review", "deny", rv.ID).check(t, 2, "", "--reason is required")
	runApp(t, env(daveToken), "", "review", "approve", rv.ID).check(t, 0, "review "+rv.ID+" approved\n", "")
	runApp(t, env(daveToken), "", "review", "deny", rv.ID, "--reason", "late").check(t, 1, "", "no longer pending")
	r = runApp(t, env(aliceToken), "", "review", "show", rv.ID)
	if words := strings.Join(strings.Fields(r.stdout), " "); !strings.Contains(words, "Access until") || !strings.Contains(words, "Approved by dave") {
		t.Errorf("review show after approval:\n%s", r.stdout)
	}
	runApp(t, env(daveToken), "", "review", "list").check(t, 0, "no reviews\n", "")
	runApp(t, env(daveToken), "", "review", "nope").check(t, 2, "", `review: unknown command "nope"`)
}
