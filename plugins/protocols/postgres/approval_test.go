package postgres_test

import (
	"bytes"
	"context"
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
	"github.com/jackc/pgx/v5/pgproto3"

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
	// The Slack-style URL is a credential: kept as a secret reference.
	t.Setenv("GWTEST_SLACK_URL", hooks.srv.URL+"/slack")
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
url_secret = "env:GWTEST_SLACK_URL"
format = "slack"
`, sha(daveToken), sha(erinToken), hold, hooks.srv.URL)) +
		appConnection("jit-db", pgSCRAM.Addr(), `tls = "require"`, `require_approval = true`, `reviewers = ["dba"]`, `min_approvals = 2`)
}

// startApprovals starts a gateway for the approval tests, with the handler
// of the run's mode: holds cross the plugin transport too.
func startApprovals(t *testing.T, hold string) (*env, *webhooks) {
	hooks := newWebhooks(t)
	return startGatewayMode(t, "", approvalConfig(t, hold, hooks), externalMode()), hooks
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
	want := "review.hold alice,review.approve dave,review.release alice"
	if got := e.reviewEvents(r.ID, want); got != want {
		t.Errorf("review events = %s, want %s", got, want)
	}
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

	// Operators see the review steps on /metrics.
	resp, err := http.Get("http://" + e.apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gatewayd_review_events_total{event="review.hold"} 2`, `gatewayd_review_events_total{event="review.approve"} 1`,
		`gatewayd_review_events_total{event="review.deny"} 1`, `gatewayd_review_events_total{event="review.release"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// No credential in the logs or the audit log: tokens, the webhook
	// secret, the URL kept as a secret.
	var trail strings.Builder
	e.auditEvents(func(ev store.Event) { trail.Write(ev.Data) })
	for _, secret := range []string{webhookSecret, daveToken, aliceToken, hooks.srv.URL + "/slack", appPassword} {
		if strings.Contains(e.logs.String(), secret) || strings.Contains(trail.String(), secret) {
			t.Errorf("%q leaked into the logs or the audit log", secret)
		}
	}
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

// TestApprovalAfterTimeoutRunsIdenticalStatementOnce: a held statement
// that times out may run once, byte for byte, by the same user on the same
// connection, if its review is approved later. Nothing else is released by
// that approval: other text, another user.
func TestApprovalAfterTimeoutRunsIdenticalStatementOnce(t *testing.T) {
	e, _ := startApprovals(t, "1s")
	const del = "DELETE FROM customers WHERE id = 99"
	out, err := e.psql(aliceToken, e.conninfo("alice", "guard-db", "require"), "-c", del)
	if err == nil || !strings.Contains(out, "was not decided within") {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	r := e.pendingReview("alice", del)
	if !strings.Contains(out, "review "+r.ID) {
		t.Fatalf("the timeout does not name review %s:\n%s", r.ID, out)
	}
	if got, st := e.decide(daveToken, r.ID, true, ""); st != http.StatusOK || got.Status != "approved" {
		t.Fatalf("late approval: %d %+v", st, got)
	}

	// Other text (one more space), and another user: held anew.
	for _, tc := range []struct{ user, token, sql string }{
		{"alice", aliceToken, del + " "},
		{"alice", aliceToken, "delete from customers where id = 99"},
		{"carol", carolToken, del},
	} {
		out, err := e.psql(tc.token, e.conninfo(tc.user, "guard-db", "require"), "-c", tc.sql)
		if err == nil || !strings.Contains(out, "was not decided within") || strings.Contains(out, r.ID) {
			t.Fatalf("%s %q: %v\n%s", tc.user, tc.sql, err, out)
		}
	}
	if n := e.count(t, "id = 99"); n != "1" {
		t.Fatalf("customer 99 after other statements: %s", n)
	}
	// The identical statement runs once...
	out, err = e.psql(aliceToken, e.conninfo("alice", "guard-db", "require"), "-c", del)
	if err != nil || !strings.Contains(out, "DELETE 1") || !strings.Contains(out, "approved in review "+r.ID) {
		t.Fatalf("identical statement after the late approval: %v\n%s", err, out)
	}
	// ... and only once.
	e.mustPSQL("-c", "INSERT INTO customers VALUES (99, 'customer 99', 'c99@example.com')")
	out, err = e.psql(aliceToken, e.conninfo("alice", "guard-db", "require"), "-c", del)
	if err == nil || !strings.Contains(out, "was not decided within") {
		t.Fatalf("second run of the identical statement: %v\n%s", err, out)
	}
	if n := e.count(t, "id = 99"); n != "1" {
		t.Fatalf("customer 99: %s", n)
	}
	var rv api.Review
	if st := e.call(daveToken, "GET", "/v1/reviews/"+r.ID, nil, &rv); st != 200 || rv.Released.IsZero() {
		t.Fatalf("review after its release: %d %+v", st, rv)
	}
}

// TestApprovalBindsParametersAndSession: in the extended protocol the
// review binds the Bind parameters; a prepared statement that needed review
// is held at each execution; approving a statement in one session does not
// release the same statement held in another; a reviewer outside the
// reviewer groups cannot approve.
func TestApprovalBindsParametersAndSession(t *testing.T) {
	e, _ := startApprovals(t, "30s")
	ctx := context.Background()
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	const del = "DELETE FROM customers WHERE id = $1"

	// Parameters 5 held; approving it runs exactly that execution.
	type res struct {
		tag string
		err error
	}
	exec := func(c *pgconn.PgConn, name string, arg string) chan res {
		ch := make(chan res, 1)
		go func() {
			var rr *pgconn.ResultReader
			if name == "" {
				rr = c.ExecParams(ctx, del, [][]byte{[]byte(arg)}, nil, nil, nil)
			} else {
				rr = c.ExecPrepared(ctx, name, [][]byte{[]byte(arg)}, nil, nil)
			}
			r := rr.Read()
			ch <- res{r.CommandTag.String(), r.Err}
		}()
		return ch
	}
	wait := func(ch chan res) res {
		select {
		case r := <-ch:
			return r
		case <-time.After(30 * time.Second):
			t.Fatal("statement did not finish")
			return res{}
		}
	}
	ch := exec(c, "", "5")
	r5 := e.pendingReview("alice", del)
	if r5.Request != "execute" || len(r5.Params) != 1 || r5.Params[0] != "('5')" {
		t.Fatalf("review of the parameterised DELETE = %+v", r5)
	}
	if _, st := e.decide(daveToken, r5.ID, true, ""); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	if got := wait(ch); got.err != nil || got.tag != "DELETE 1" {
		t.Fatalf("approved DELETE: %+v", got)
	}

	// Other parameters: a new review, denied.
	ch = exec(c, "", "6")
	r6 := e.pendingReview("alice", del, r5.ID)
	if r6.Params[0] != "('6')" {
		t.Fatalf("second review = %+v", r6)
	}
	e.decide(daveToken, r6.ID, false, "wrong customer")
	wantRefused(t, "other parameters", wait(ch).err, "wrong customer")

	// A prepared statement: Parse alone is not held, each execution is.
	if _, err := c.Prepare(ctx, "del", del, nil); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	ch = exec(c, "del", "7")
	r7 := e.pendingReview("alice", del, r5.ID, r6.ID)
	e.decide(daveToken, r7.ID, true, "")
	if got := wait(ch); got.err != nil || got.tag != "DELETE 1" {
		t.Fatalf("approved prepared DELETE: %+v", got)
	}
	ch = exec(c, "del", "8")
	r8 := e.pendingReview("alice", del, r5.ID, r6.ID, r7.ID)
	e.decide(daveToken, r8.ID, false, "one at a time")
	wantRefused(t, "second execution of the prepared statement", wait(ch).err, "one at a time")

	// The same statement held in two sessions: approving one releases
	// only that one. alice (an admin, not a reviewer) cannot approve
	// carol's.
	c2 := e.connectAs(t, "carol", carolToken, "guard-db")
	const del9 = "DELETE FROM customers WHERE id = 9"
	ch1 := make(chan error, 1)
	go func() { ch1 <- execSQL(c, del9) }()
	ra := e.pendingReview("alice", del9)
	ch2 := make(chan error, 1)
	go func() { ch2 <- execSQL(c2, del9) }()
	rb := e.pendingReview("carol", del9)
	if _, st := e.decide(aliceToken, rb.ID, true, ""); st != http.StatusForbidden {
		t.Errorf("alice approving carol's statement: %d, want 403", st)
	}
	if _, st := e.decide(carolToken, rb.ID, true, ""); st != http.StatusForbidden {
		t.Errorf("carol approving her own statement: %d, want 403", st)
	}
	e.decide(daveToken, ra.ID, true, "")
	select {
	case err := <-ch1:
		if err != nil {
			t.Fatalf("alice's approved DELETE: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("alice's DELETE did not run")
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-ch2:
		t.Fatalf("carol's DELETE ended when alice's was approved: %v", err)
	default:
	}
	var rv api.Review
	if e.call(daveToken, "GET", "/v1/reviews/"+rb.ID, nil, &rv); rv.Status != "pending" {
		t.Fatalf("carol's review = %+v", rv)
	}
	e.decide(erinToken, rb.ID, false, "no")
	wantRefused(t, "carol", <-ch2, "denied by erin: no")
	if n := e.count(t, "id IN (5, 6, 7, 8, 9)"); n != "2" {
		t.Fatalf("customers 5..9 left: %s, want 2 (6 and 8)", n)
	}
	e.mustPSQL("-c", "INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM unnest(ARRAY[5, 7, 9]) i")
}

// TestApprovalHeldStatementOfDisconnectedClientNeverRuns: the client of a
// held statement goes away; its review is withdrawn and cannot be
// approved, and the statement never runs.
func TestApprovalHeldStatementOfDisconnectedClientNeverRuns(t *testing.T) {
	e, hooks := startApprovals(t, "30s")
	for _, viaPSQL := range []bool{false, true} {
		sql := fmt.Sprintf("DELETE FROM customers WHERE id = %d", map[bool]int{false: 11, true: 12}[viaPSQL])
		var leave func()
		if viaPSQL {
			// psql ended by a signal: its socket closes.
			cmd := exec.Command(filepath.Join(pgSCRAM.BinDir(), "psql"), "-X", e.conninfo("alice", "guard-db", "require"), "-c", sql)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+aliceToken)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			leave = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
		} else {
			// The TCP connection closed under a pgconn, without Terminate.
			c := e.connectAs(t, "alice", aliceToken, "guard-db")
			go func() { _ = execSQL(c, sql) }()
			leave = func() { _ = c.Conn().Close() }
		}
		r := e.pendingReview("alice", sql)
		leave()
		deadline := time.Now().Add(10 * time.Second)
		var rv api.Review
		for e.call(daveToken, "GET", "/v1/reviews/"+r.ID, nil, &rv); rv.Status != "cancelled"; e.call(daveToken, "GET", "/v1/reviews/"+r.ID, nil, &rv) {
			if time.Now().After(deadline) {
				t.Fatalf("psql=%v: review = %+v, want cancelled", viaPSQL, rv)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, st := e.decide(daveToken, r.ID, true, ""); st != http.StatusConflict {
			t.Errorf("psql=%v: approving a withdrawn review: %d, want 409", viaPSQL, st)
		}
		hooks.wait(audit.KindReviewHold, r.ID)
	}
	if n := e.count(t, "id IN (11, 12)"); n != "2" {
		t.Fatalf("customers 11, 12: %s, want both still there", n)
	}
}

// TestAccessRequestGrant: a connection with require_approval opens only
// under an approved access request (two approvals, not the requester's),
// and the session ends when the grant expires; an expired grant starts no
// session.
func TestAccessRequestGrant(t *testing.T) {
	e, hooks := startApprovals(t, "30s")
	out, err := e.psql(aliceToken, e.conninfo("alice", "jit-db", "require"), "-c", "SELECT 1")
	if err == nil || !strings.Contains(out, "requires an approved access request") {
		t.Fatalf("jit-db without a grant: %v\n%s", err, out)
	}
	// bob may not use the connection at all: he cannot even ask.
	if out, err := e.ctl(t, bobToken, "request", "jit-db", "--for", "1h", "--reason", "x"); err == nil {
		t.Fatalf("bob requesting: %s", out)
	}
	out, err = e.ctl(t, aliceToken, "request", "jit-db", "--for", "4s", "--reason", "INC-4211", "--json")
	if err != nil {
		t.Fatalf("gatewayctl request: %v\n%s", err, out)
	}
	var req api.Review
	if err := json.Unmarshal([]byte(out), &req); err != nil || req.Status != "pending" || req.MinApprovals != 2 {
		t.Fatalf("request = %s (%v)", out, err)
	}
	hooks.wait(audit.KindReviewRequest, req.ID)
	if _, st := e.decide(aliceToken, req.ID, true, ""); st != http.StatusForbidden {
		t.Fatalf("requester approving: %d", st)
	}
	if _, st := e.decide(carolToken, req.ID, true, ""); st != http.StatusNotFound {
		t.Fatalf("non-reviewer approving: %d", st)
	}
	for i, token := range []string{daveToken, daveToken} { // counted once
		if got, st := e.decide(token, req.ID, true, ""); st != 200 || got.Status != "pending" || len(got.Approvals) != 1 {
			t.Fatalf("approval %d: %d %+v", i, st, got)
		}
	}
	if out, err := e.psql(aliceToken, e.conninfo("alice", "jit-db", "require"), "-c", "SELECT 1"); err == nil {
		t.Fatalf("jit-db with one of two approvals: %s", out)
	}
	out, err = e.ctl(t, erinToken, "review", "approve", req.ID)
	if err != nil || !strings.Contains(out, "approved") {
		t.Fatalf("erin approving: %v\n%s", err, out)
	}
	// The session starts, and ends with the grant.
	start := time.Now()
	out, err = e.psql(aliceToken, e.conninfo("alice", "jit-db", "require"), "-c", "SELECT 'in'", "-c", "SELECT pg_sleep(30)")
	if err == nil || !strings.Contains(out, "in") || !strings.Contains(out, "access grant to this connection expired") {
		t.Fatalf("session under the grant: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("the session ran %v, past its grant", took)
	}
	// Nothing of it goes on running on the server.
	su, err := pgconn.Connect(context.Background(), pgSCRAM.SuperuserDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rows, err := su.Exec(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if string(rows[0].Rows[0][0]) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the statement still runs on the server after the grant expired")
		}
	}
	out, err = e.psql(aliceToken, e.conninfo("alice", "jit-db", "require"), "-c", "SELECT 1")
	if err == nil || !strings.Contains(out, "requires an approved access request") {
		t.Fatalf("jit-db after the grant expired: %v\n%s", err, out)
	}
	want := "review.request alice,review.approve dave,review.approve dave,review.approve erin,review.expire alice"
	if got := e.reviewEvents(req.ID, want); got != want {
		t.Errorf("grant events = %s, want %s", got, want)
	}
	// The session's start names the grant that let it start.
	var starts int
	e.auditEvents(func(ev store.Event) {
		var d struct {
			GrantID string `json:"grant_id"`
		}
		if ev.Kind == audit.KindSessionStart && json.Unmarshal(ev.Data, &d) == nil && d.GrantID != "" {
			starts++
			if d.GrantID != req.ID {
				t.Errorf("session.start under the grant: %s, want grant_id %s", ev.Data, req.ID)
			}
		}
	})
	if starts != 1 {
		t.Errorf("%d session.start events name the grant, want 1", starts)
	}
}

// reviewEvents lists the kinds and identities of the review events of a
// review, waiting a little for want (events are committed in batches).
func (e *env) reviewEvents(id, want string) string {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var kinds []string
		e.auditEvents(func(ev store.Event) {
			if strings.HasPrefix(ev.Kind, "review.") && strings.Contains(string(ev.Data), id) {
				kinds = append(kinds, ev.Kind+" "+ev.Identity)
			}
		})
		got := strings.Join(kinds, ",")
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestApprovalCancelWithdrawsHold: a CancelRequest (psql's Ctrl-C) while a
// statement is held withdraws its review; the session goes on.
func TestApprovalCancelWithdrawsHold(t *testing.T) {
	e, _ := startApprovals(t, "30s")
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	const del = "DELETE FROM customers WHERE id = 13"
	errc := make(chan error, 1)
	go func() { errc <- execSQL(c, del) }()
	r := e.pendingReview("alice", del)
	if err := c.CancelRequest(context.Background()); err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(20 * time.Second):
		t.Fatal("the cancelled statement did not finish")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "review "+r.ID+" was withdrawn") {
		t.Fatalf("cancelled hold: %v", err)
	}
	if _, st := e.decide(daveToken, r.ID, true, ""); st != http.StatusConflict {
		t.Errorf("approving a withdrawn review: %d, want 409", st)
	}
	if err := execSQL(c, "SELECT 1"); err != nil {
		t.Fatalf("session after the cancel: %v", err)
	}
	if n := e.count(t, "id = 13"); n != "1" {
		t.Fatalf("customer 13: %s", n)
	}
}

// TestApprovalHoldsTheRestOfABatch: in a pipelined batch the statements
// before the held one run with it, in the batch's implicit transaction: a
// denial rolls them back, an approval commits them with it. A batch with
// two statements needing review is refused whole, without a review.
func TestApprovalHoldsTheRestOfABatch(t *testing.T) {
	e, _ := startApprovals(t, "30s")
	ctx := context.Background()
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	const del = "DELETE FROM customers WHERE id = $1"
	run := func(b *pgconn.Batch) chan error {
		ch := make(chan error, 1)
		go func() { _, err := c.ExecBatch(ctx, b).ReadAll(); ch <- err }()
		return ch
	}
	batch := func() *pgconn.Batch {
		b := &pgconn.Batch{}
		b.ExecParams("UPDATE customers SET name = 'batched' WHERE id = 20", nil, nil, nil, nil)
		b.ExecParams(del, [][]byte{[]byte("21")}, nil, nil, nil)
		b.ExecParams("SELECT 1", nil, nil, nil, nil)
		return b
	}
	ch := run(batch())
	r := e.pendingReview("alice", del)
	e.decide(daveToken, r.ID, false, "no")
	wantRefused(t, "denied batch", <-ch, "denied by dave: no")
	if n := e.count(t, "id = 21 OR name = 'batched'"); n != "1" {
		t.Fatalf("after the denied batch: %s rows, want 1 (21, not renamed)", n)
	}
	ch = run(batch())
	r = e.pendingReview("alice", del, r.ID)
	e.decide(daveToken, r.ID, true, "")
	if err := <-ch; err != nil {
		t.Fatalf("approved batch: %v", err)
	}
	if n := e.count(t, "id = 21 OR name = 'batched'"); n != "1" {
		t.Fatalf("after the approved batch: %s rows, want 1 (20 renamed, 21 gone)", n)
	}

	b := &pgconn.Batch{}
	b.ExecParams(del, [][]byte{[]byte("22")}, nil, nil, nil)
	b.ExecParams("DELETE FROM customers WHERE id = 23", nil, nil, nil, nil)
	_, err := c.ExecBatch(ctx, b).ReadAll()
	wantRefused(t, "two statements needing review", err, "only one statement needing approval")
	var list api.ReviewList
	e.call(daveToken, "GET", "/v1/reviews?status=pending", nil, &list)
	if len(list.Reviews) != 0 || e.count(t, "id IN (22, 23)") != "2" {
		t.Fatalf("after the refused batch: reviews %+v", list.Reviews)
	}
	e.mustPSQL("-c", "UPDATE customers SET name = 'customer 20' WHERE id = 20; INSERT INTO customers VALUES (21, 'customer 21', 'c21@example.com')")
}

// TestApprovalBindsParameterTypes: the types a Parse gives a statement's
// parameters decide what the Bind's bytes mean. The eight bytes of the
// float8 1.0 are the int8 4607182418800017408: a late approval of
// "id < $1" with a float8 1.0 must not release it with an int8 of the
// same bytes.
func TestApprovalBindsParameterTypes(t *testing.T) {
	e, _ := startApprovals(t, "1s")
	ctx := context.Background()
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	const del = "DELETE FROM customers WHERE id < $1 AND id > 95"
	one := []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0}
	run := func(oid uint32) error {
		_, err := c.ExecParams(ctx, del, [][]byte{one}, []uint32{oid}, []int16{1}, nil).Close()
		return err
	}
	const float8, int8 = 701, 20
	if err := run(float8); err == nil || !strings.Contains(err.Error(), "was not decided within") {
		t.Fatalf("float8 DELETE: %v, want a timeout", err)
	}
	r := e.pendingReview("alice", del)
	if _, st := e.decide(daveToken, r.ID, true, ""); st != http.StatusOK {
		t.Fatalf("late approval: %d", st)
	}
	err := run(int8)
	n := e.count(t, "id > 95")
	e.mustPSQL("-c", "INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(96, 100) i ON CONFLICT DO NOTHING")
	if err == nil || !strings.Contains(err.Error(), "was not decided within") || n != "5" {
		t.Fatalf("the same bytes as int8 after the approval of float8: %v; customers over 95: %s, want 5", err, n)
	}
}

// TestApprovalPipeliningClientThatLeavesNeverRuns: a client that sent
// more behind its held statement (a pipelining client) and then goes
// away withdraws the review as any other: an approval after it left
// never runs the statement.
func TestApprovalPipeliningClientThatLeavesNeverRuns(t *testing.T) {
	e, _ := startApprovals(t, "30s")
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	const sql = "DELETE FROM customers WHERE id = 13"
	q := append([]byte{'Q', 0, 0, 0, 0}, sql...)
	q = append(q, 0)
	q[4] = byte(len(q) - 1)
	// A Sync pipelined behind the Query, sent before the Query is answered.
	q = append(q, 'S', 0, 0, 0, 4)
	if _, err := c.Conn().Write(q); err != nil {
		t.Fatal(err)
	}
	r := e.pendingReview("alice", sql)
	time.Sleep(200 * time.Millisecond) // the gateway has read the Sync
	_ = c.Conn().Close()
	deadline := time.Now().Add(10 * time.Second)
	var rv api.Review
	for e.call(daveToken, "GET", "/v1/reviews/"+r.ID, nil, &rv); rv.Status != "cancelled"; e.call(daveToken, "GET", "/v1/reviews/"+r.ID, nil, &rv) {
		if time.Now().After(deadline) {
			e.decide(daveToken, r.ID, true, "")
			time.Sleep(time.Second)
			n := e.count(t, "id = 13")
			e.mustPSQL("-c", "INSERT INTO customers VALUES (13, 'customer 13', 'c13@example.com') ON CONFLICT DO NOTHING")
			t.Fatalf("review = %+v, want cancelled; approved after the client left, customer 13 rows: %s", rv, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, st := e.decide(daveToken, r.ID, true, ""); st != http.StatusConflict {
		t.Errorf("approving a withdrawn review: %d, want 409", st)
	}
	if n := e.count(t, "id = 13"); n != "1" {
		t.Fatalf("customer 13: %s, want still there", n)
	}
}

// TestApprovalMarkSurvivesFailedCloseOrParse: a prepared statement that
// needed review stays marked until the server has really closed or
// replaced it. A Parse of its name that fails (the name exists), or a
// Close the server skips after an error earlier in its batch, leaves the
// statement on the server: binding it afterwards is still held.
func TestApprovalMarkSurvivesFailedCloseOrParse(t *testing.T) {
	e, _ := startApprovals(t, "1s")
	ctx := context.Background()
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	const del = "DELETE FROM customers WHERE id = $1"
	if _, err := c.Prepare(ctx, "del", del, nil); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	// A Parse of the same name fails on the server: "del" is still the DELETE.
	if _, err := c.Prepare(ctx, "del", "SELECT $1::int", nil); err == nil {
		t.Fatal("preparing an existing name succeeded")
	}
	_, err := c.ExecPrepared(ctx, "del", [][]byte{[]byte("31")}, nil, nil).Close()
	if err == nil || !strings.Contains(err.Error(), "was not decided within") {
		t.Errorf("executing the DELETE after a failed re-Parse of its name: %v, want a hold", err)
	}
	// A Close the server skips: the Bind before it fails.
	fe := c.Frontend()
	fe.Send(&pgproto3.Bind{PreparedStatement: "no such statement"})
	fe.Send(&pgproto3.Close{ObjectType: 'S', Name: "del"})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	_, err = c.ExecPrepared(ctx, "del", [][]byte{[]byte("32")}, nil, nil).Close()
	if err == nil || !strings.Contains(err.Error(), "was not decided within") {
		t.Errorf("executing the DELETE after a skipped Close: %v, want a hold", err)
	}
	// The same with a Flush: the error comes before the Sync is sent.
	fe.Send(&pgproto3.Bind{PreparedStatement: "no such statement"})
	fe.Send(&pgproto3.Close{ObjectType: 'S', Name: "del"})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*pgproto3.ErrorResponse); !ok {
		t.Fatalf("after the failing Bind: %T", m)
	}
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	_, err = c.ExecPrepared(ctx, "del", [][]byte{[]byte("33")}, nil, nil).Close()
	if err == nil || !strings.Contains(err.Error(), "was not decided within") {
		t.Errorf("executing the DELETE after a Close skipped before a Flush: %v, want a hold", err)
	}
	// A Close that runs does end the mark: the name is free for a
	// statement that needs no review.
	if err := c.Deallocate(ctx, "del"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prepare(ctx, "del", "SELECT $1::int", nil); err != nil {
		t.Fatal(err)
	}
	if r := c.ExecPrepared(ctx, "del", [][]byte{[]byte("34")}, nil, nil).Read(); r.Err != nil || len(r.Rows) != 1 {
		t.Errorf("the statement prepared under the closed one's name: %v", r.Err)
	}
	n := e.count(t, "id IN (31, 32, 33)")
	e.mustPSQL("-c", "INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM unnest(ARRAY[31, 32, 33]) i ON CONFLICT DO NOTHING")
	if n != "3" {
		t.Fatalf("customers 31, 32, 33: %s left, want 3: the DELETE ran unreviewed", n)
	}
}

// TestApprovalMarkSurvivesItsOwnBatch: a batch that prepares a statement
// needing review and, in the same batch, re-parses or closes it leaves it
// marked unless the server really closed it: a re-Parse of the name fails,
// and a Close after an error is skipped.
func TestApprovalMarkSurvivesItsOwnBatch(t *testing.T) {
	e, _ := startApprovals(t, "1s")
	ctx := context.Background()
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	const del = "DELETE FROM customers WHERE id = $1"
	fe := c.Frontend()
	roundTrip := func(msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		for _, m := range msgs {
			fe.Send(m)
		}
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				return
			}
		}
	}
	held := func(name, id string) {
		t.Helper()
		_, err := c.ExecPrepared(ctx, name, [][]byte{[]byte(id)}, nil, nil).Close()
		if err == nil || !strings.Contains(err.Error(), "was not decided within") {
			t.Errorf("executing %s: %v, want a hold", name, err)
		}
	}
	// The second Parse of the name fails: s1 is the DELETE.
	roundTrip(&pgproto3.Parse{Name: "s1", Query: del}, &pgproto3.Parse{Name: "s1", Query: "SELECT $1::int"})
	held("s1", "36")
	// The Close is skipped after the failing Bind: s2 is the DELETE.
	roundTrip(&pgproto3.Parse{Name: "s2", Query: del}, &pgproto3.Bind{PreparedStatement: "no such statement"},
		&pgproto3.Close{ObjectType: 'S', Name: "s2"})
	held("s2", "37")
	// The unnamed statement marked, then replaced by two pipelined batches
	// sent before either is answered: neither is held.
	roundTrip(&pgproto3.Parse{Query: del})
	for range 2 {
		fe.Send(&pgproto3.Parse{Query: "SELECT $1::int"})
		fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for ready := 0; ready < 2; {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			ready++
		case *pgproto3.ErrorResponse:
			t.Errorf("pipelined SELECT: %s %s", m.Code, m.Message)
		case *pgproto3.NoticeResponse:
			t.Errorf("pipelined SELECT: %s", m.Message)
		}
	}
	n := e.count(t, "id IN (36, 37)")
	e.mustPSQL("-c", "INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM unnest(ARRAY[36, 37]) i ON CONFLICT DO NOTHING")
	if n != "2" {
		t.Fatalf("customers 36, 37: %s left, want 2: the DELETE ran unreviewed", n)
	}
}

// TestApprovalSQLExecuteOfMarkedStatement: a statement prepared with the
// extended protocol (Parse) that needed review is held at each Bind; SQL
// EXECUTE of the same name, in a simple Query or a Parse, must not run it
// unreviewed.
func TestApprovalSQLExecuteOfMarkedStatement(t *testing.T) {
	e, _ := startApprovals(t, "1s")
	ctx := context.Background()
	c := e.connectAs(t, "alice", aliceToken, "guard-db")
	if _, err := c.Prepare(ctx, "del", "DELETE FROM customers WHERE id = $1", nil); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	for _, sql := range []string{"EXECUTE del(39)", "/* x */ execute  \"del\" (40)"} {
		err := execSQL(c, sql)
		if err == nil {
			t.Errorf("%s ran", sql)
		}
	}
	if _, err := c.ExecParams(ctx, "EXECUTE del(41)", nil, nil, nil, nil).Close(); err == nil {
		t.Error("EXECUTE in a Parse ran")
	}
	n := e.count(t, "id IN (39, 40, 41)")
	e.mustPSQL("-c", "INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM unnest(ARRAY[39, 40, 41]) i ON CONFLICT DO NOTHING")
	if n != "3" {
		t.Fatalf("customers 39, 40, 41: %s left, want 3: the DELETE ran unreviewed", n)
	}
}
