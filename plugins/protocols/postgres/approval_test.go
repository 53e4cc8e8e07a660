package postgres_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/review"
	"github.com/gatewayd-access/gatewayd/core/store"
)

// Reviewers of the approval tests: dave and erin are in dba, carol (dev)
// is not a reviewer, alice is an admin but not a reviewer.
const (
	daveToken     = "gwt_dave_test_token_4444444444"
	erinToken     = "gwt_erin_test_token_3333333333"
	webhookSecret = "WEBHOOK-secret-5d1f0b"
)

// webhooks records the notifications gatewayd posts, checking their
// signatures.
type webhooks struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	json  []review.Message
	slack []string
	bad   []string
}

func newWebhooks(t *testing.T) *webhooks {
	w := &webhooks{t: t}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		switch r.URL.Path {
		case "/json":
			ts := r.Header.Get(review.HeaderTimestamp)
			if got, want := r.Header.Get(review.HeaderSignature), review.Sign([]byte(webhookSecret), ts, body); got != want {
				w.bad = append(w.bad, fmt.Sprintf("signature %q, want %q", got, want))
				rw.WriteHeader(http.StatusUnauthorized)
				return
			}
			var m review.Message
			if err := json.Unmarshal(body, &m); err != nil || m.Event != r.Header.Get(review.HeaderEvent) {
				w.bad = append(w.bad, fmt.Sprintf("body %s: %v", body, err))
			}
			w.json = append(w.json, m)
		case "/slack":
			var m struct{ Text string }
			if err := json.Unmarshal(body, &m); err != nil || m.Text == "" {
				w.bad = append(w.bad, fmt.Sprintf("slack body %s: %v", body, err))
			}
			w.slack = append(w.slack, m.Text)
		}
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// wait waits until a JSON notification of event for review id arrives.
func (w *webhooks) wait(event, id string) review.Message {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, m := range w.json {
			if m.Event == event && m.Review.ID == id {
				w.mu.Unlock()
				return m
			}
		}
		w.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("no %s notification of review %s; have %+v", event, id, w.json)
	return review.Message{}
}

// approvalConfig is guardConfig with reviewers, a connection that
// requires approval, the hold timeout and webhooks.
func approvalConfig(t *testing.T, hold string, hooks *webhooks) string {
	t.Setenv("GWTEST_WEBHOOK_SECRET", webhookSecret)
	return guardConfigWith(fmt.Sprintf(`
[[identity.static]]
name = "dave"
groups = ["dba", "dev"]
token_sha256 = %q

[[identity.static]]
name = "erin"
groups = ["dba"]
token_sha256 = %q

[review]
hold_timeout = %q

[[review.webhook]]
url = "%s/json"
secret = "env:GWTEST_WEBHOOK_SECRET"
max_attempts = 2

[[review.webhook]]
url = "%s/slack"
format = "slack"
`, sha(daveToken), sha(erinToken), hold, hooks.srv.URL, hooks.srv.URL)) +
		appConnection("jit-db", pgSCRAM.Addr(), `tls = "require"`, `require_approval = true`, `reviewers = ["dba"]`, `min_approvals = 2`)
}

// startApprovals starts a gateway with the built-in handler: holding needs
// the in-process host (over the plugin transport a review is a refusal).
func startApprovals(t *testing.T, hold string) (*env, *webhooks) {
	hooks := newWebhooks(t)
	return startGatewayMode(t, "", approvalConfig(t, hold, hooks), false), hooks
}

// call makes an API request as token and decodes the answer into out;
// it returns the status.
func (e *env) call(token, method, path string, in, out any) int {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+e.apiAddr+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// pendingReview waits until a pending statement review of identity with
// text is listed for dave, and returns it.
func (e *env) pendingReview(identity, text string, not ...string) api.Review {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var list api.ReviewList
		if st := e.call(daveToken, "GET", "/v1/reviews?status=pending", nil, &list); st != 200 {
			e.t.Fatalf("listing reviews: %d", st)
		}
	next:
		for _, r := range list.Reviews {
			if r.Kind == "statement" && r.Identity == identity && r.Text == text {
				for _, id := range not {
					if r.ID == id {
						continue next
					}
				}
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no pending review of %q by %s", text, identity)
	return api.Review{}
}

func (e *env) decide(token, id string, approve bool, reason string) (api.Review, int) {
	e.t.Helper()
	verb := "approve"
	if !approve {
		verb = "deny"
	}
	var r api.Review
	st := e.call(token, "POST", "/v1/reviews/"+id+"/"+verb, api.Decision{Reason: reason}, &r)
	return r, st
}

// gatewayctl is the CLI binary, built once per test binary.
var gatewayctl struct {
	once sync.Once
	path string
	err  error
}

func gatewayctlBinary(t *testing.T) string {
	t.Helper()
	gatewayctl.once.Do(func() {
		dir, err := os.MkdirTemp("", "gatewayctl-")
		if err != nil {
			gatewayctl.err = err
			return
		}
		gatewayctl.path = filepath.Join(dir, "gatewayctl")
		out, err := exec.Command("go", "build", "-o", gatewayctl.path, "github.com/gatewayd-access/gatewayd/cmd/gatewayctl").CombinedOutput()
		if err != nil {
			gatewayctl.err = fmt.Errorf("building gatewayctl: %v\n%s", err, out)
		}
	})
	if gatewayctl.err != nil {
		t.Fatal(gatewayctl.err)
	}
	t.Cleanup(func() {}) // the binary stays for the other tests; TestMain's temp dir is the OS's
	return gatewayctl.path
}

// ctl runs gatewayctl against the gateway as token.
func (e *env) ctl(t *testing.T, token string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(gatewayctlBinary(t), args...)
	cmd.Env = append(os.Environ(), "GATEWAYD_ADDR=http://"+e.apiAddr, "GATEWAYD_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) count(t *testing.T, where string) string {
	t.Helper()
	return e.mustPSQL("-c", "SELECT count(*) FROM customers WHERE "+where)
}

// TestApprovalReleasesHeldStatementInSamePSQL: psql holds a DELETE while
// gatewayctl, another process, approves it; the DELETE's result then
// arrives in the same psql session, which goes on.
func TestApprovalReleasesHeldStatementInSamePSQL(t *testing.T) {
	e, hooks := startApprovals(t, "60s")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.psql(aliceToken, e.conninfo("alice", "guard-db", "require"),
			"-c", "DELETE FROM customers WHERE id = 100", "-c", "SELECT 'after: ' || count(*) FROM customers")
		done <- result{out, err}
	}()
	r := e.pendingReview("alice", "DELETE FROM customers WHERE id = 100")
	if r.SessionID == "" || len(r.Reviewers) != 1 || r.Reviewers[0] != "dba" || r.Request != "query" {
		t.Fatalf("review = %+v", r)
	}
	hooks.wait(audit.KindReviewHold, r.ID)

	// Nobody outside the reviewers decides; not the requester either.
	if _, st := e.decide(carolToken, r.ID, true, ""); st != http.StatusNotFound {
		t.Errorf("carol (not a reviewer) approving: %d, want 404", st)
	}
	if _, st := e.decide(aliceToken, r.ID, true, ""); st != http.StatusForbidden {
		t.Errorf("alice approving her own statement: %d, want 403", st)
	}
	select {
	case res := <-done:
		t.Fatalf("psql ended before approval: %v\n%s", res.err, res.out)
	default:
	}

	out, err := e.ctl(t, daveToken, "review", "list")
	if err != nil || !strings.Contains(out, r.ID) || !strings.Contains(out, "can decide") {
		t.Fatalf("gatewayctl review list: %v\n%s", err, out)
	}
	out, err = e.ctl(t, daveToken, "review", "approve", r.ID)
	if err != nil || !strings.Contains(out, "approved") {
		t.Fatalf("gatewayctl review approve: %v\n%s", err, out)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("psql did not finish after the approval")
	}
	if res.err != nil || !strings.Contains(res.out, "DELETE 1") || !strings.Contains(res.out, "after: 99") ||
		!strings.Contains(res.out, "held for approval in review "+r.ID) {
		t.Fatalf("psql: %v\n%s", res.err, res.out)
	}
	hooks.wait(audit.KindReviewApprove, r.ID)

	// One approval, one execution: the same statement is held again.
	if _, st := e.decide(daveToken, r.ID, true, ""); st != http.StatusConflict {
		t.Errorf("approving again: %d, want 409", st)
	}
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	id2, err := holdAndDeny(t, e, c, "alice", "DELETE FROM customers WHERE id = 100", r.ID)
	wantRefused(t, "the same DELETE again", err, "review "+id2+" was denied by dave: not now, "+id2)
	if n := e.count(t, "id = 100"); n != "0" {
		t.Fatalf("customer 100: %s", n)
	}

	// The audit trail links the hold, the approval and the release to the
	// session, and the statement to the review that released it.
	var kinds []string
	var released bool
	e.auditEvents(func(ev store.Event) {
		if strings.HasPrefix(ev.Kind, "review.") {
			var d audit.ReviewData
			_ = json.Unmarshal(ev.Data, &d)
			if d.ReviewID == r.ID {
				kinds = append(kinds, ev.Kind)
				if ev.Kind == audit.KindReviewRelease && ev.SessionID != r.SessionID {
					t.Errorf("release event in session %s, want %s", ev.SessionID, r.SessionID)
				}
			}
		}
		if ev.Kind == audit.KindRequest && ev.SessionID == r.SessionID {
			var d audit.RequestData
			_ = json.Unmarshal(ev.Data, &d)
			if d.Text == "DELETE FROM customers WHERE id = 100" && d.Outcome == "ok" && d.ReviewID == r.ID && d.Tag == "DELETE 1" {
				released = true
			}
		}
	})
	if got := strings.Join(kinds, ","); got != "review.hold,review.approve,review.release" {
		t.Errorf("review events = %s", got)
	}
	if !released {
		t.Error("no request event of the released DELETE naming its review")
	}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	if len(hooks.bad) > 0 {
		t.Errorf("bad notifications: %v", hooks.bad)
	}
	if len(hooks.slack) < 2 || !strings.Contains(strings.Join(hooks.slack, "\n"), "gatewayctl review approve "+r.ID) {
		t.Errorf("slack notifications = %q", hooks.slack)
	}
	e.mustPSQL("-c", "INSERT INTO customers VALUES (100, 'customer 100', 'c100@example.com')")
}

// holdAndDeny sends sql on c as identity; it must be held in a new review
// (none of not), which dave denies. It returns the review and what the
// client got.
func holdAndDeny(t *testing.T, e *env, c *pgconn.PgConn, identity, sql string, not ...string) (string, error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- execSQL(c, sql) }()
	r := e.pendingReview(identity, sql, not...)
	if _, st := e.decide(daveToken, r.ID, false, "not now, "+r.ID); st != http.StatusOK {
		t.Fatalf("denying %s: %d", r.ID, st)
	}
	select {
	case err := <-errc:
		return r.ID, err
	case <-time.After(20 * time.Second):
		t.Fatalf("%q did not finish after the denial", sql)
		return "", nil
	}
}

// auditEvents calls fn for every audit event, read through the API.
func (e *env) auditEvents(fn func(store.Event)) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.apiAddr+"/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Kind      string          `json:"kind"`
			SessionID string          `json:"session_id"`
			Identity  string          `json:"identity"`
			Data      json.RawMessage `json:"data"`
		}
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			e.t.Fatal(err)
		}
		fn(store.Event{Kind: ev.Kind, SessionID: ev.SessionID, Identity: ev.Identity, Data: ev.Data})
	}
}
