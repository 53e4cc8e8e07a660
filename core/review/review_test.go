package review_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/review"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

var (
	alice = protocol.Identity{Name: "alice", Groups: []string{"dev", "dba"}}
	carol = protocol.Identity{Name: "carol", Groups: []string{"dev"}}
	dave  = protocol.Identity{Name: "dave", Groups: []string{"dba"}}
	erin  = protocol.Identity{Name: "erin", Groups: []string{"dba"}}
)

const testConfig = `
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
reviewers = ["dba"]

[[connection]]
name = "other-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
secret = "env:X"
allow_groups = ["dev"]

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
min_approvals = 2

[review]
hold_timeout = "50ms"

[[identity.static]]
name = "alice"
email = "Alice@Example.com"
token_sha256 = "1111111111111111111111111111111111111111111111111111111111111111"

[[identity.static]]
name = "dave"
email = "dave@example.com"
token_sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
`

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newService returns a review service on a real SQLite store and audit
// log, with its clock.
func newService(t *testing.T) (*review.Service, store.Store, *clock) {
	t.Helper()
	cfg, err := config.Parse("/etc/gatewayd/gateway.toml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gatewayd.db"))
	if err != nil {
		t.Fatal(err)
	}
	aw, err := audit.NewWriter(context.Background(), st, slog.New(slog.DiscardHandler), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = aw.Close(context.Background())
		_ = st.Close()
	})
	clk := &clock{now: time.Now()}
	return review.New(review.Options{Store: st, Audit: aw, Config: cfg, Now: clk.Now}), st, clk
}

func hold(t *testing.T, s *review.Service, id protocol.Identity, conn, session, text string, params []byte) *protocol.HoldResponse {
	t.Helper()
	resp, err := s.Hold(context.Background(), review.HoldRequest{
		HoldRequest: protocol.HoldRequest{SessionID: session, Request: "execute", Text: text, Params: params},
		Identity:    id, Connection: conn,
	})
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	return resp
}

func TestDigestBindsEveryField(t *testing.T) {
	base := []string{"alice", "app-db", "execute", "DELETE FROM t", "p"}
	digest := func(f []string) string { return review.Digest(f[0], f[1], f[2], f[3], []byte(f[4])) }
	seen := map[string]int{digest(base): -1}
	for i := range base {
		f := append([]string(nil), base...)
		f[i] += "x"
		d := digest(f)
		if j, dup := seen[d]; dup {
			t.Errorf("changing field %d gives the digest of %d", i, j)
		}
		seen[d] = i
	}
	// Moving a byte from one field to the next changes the digest.
	if review.Digest("ab", "c", "", "", nil) == review.Digest("a", "bc", "", "", nil) {
		t.Error("fields are not delimited")
	}
}

// TestApprovalReleasesOnlyItsBinding: a statement whose hold timed out and
// was approved later is released once, to the same identity on the same
// connection for the same text and parameters, and to nothing else.
func TestApprovalReleasesOnlyItsBinding(t *testing.T) {
	s, _, clk := newService(t)
	ctx := context.Background()
	r := hold(t, s, alice, "app-db", "s1", "DELETE FROM t WHERE id = $1", []byte("5"))
	if r.Released || len(r.Reviewers) != 1 || r.Reviewers[0] != "dba" {
		t.Fatalf("Hold = %+v", r)
	}
	out, err := s.AwaitHold(ctx, "s1", r.ReviewID)
	if err != nil || out.Outcome != protocol.HoldTimedOut {
		t.Fatalf("AwaitHold = %+v, %v; want a timeout", out, err)
	}
	clk.add(time.Minute)
	if _, err := s.Decide(ctx, dave, r.ReviewID, true, ""); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	for _, tc := range []struct {
		name       string
		id         protocol.Identity
		conn, text string
		params     []byte
	}{
		{"other text", alice, "app-db", "DELETE FROM t WHERE id = $1 ", []byte("5")},
		{"other parameters", alice, "app-db", "DELETE FROM t WHERE id = $1", []byte("6")},
		{"no parameters", alice, "app-db", "DELETE FROM t WHERE id = $1", nil},
		{"other user", carol, "app-db", "DELETE FROM t WHERE id = $1", []byte("5")},
		{"other connection", alice, "other-db", "DELETE FROM t WHERE id = $1", []byte("5")},
	} {
		if got := hold(t, s, tc.id, tc.conn, "s2", tc.text, tc.params); got.Released || got.ReviewID == r.ReviewID {
			t.Errorf("%s: released by the approval of %s", tc.name, r.ReviewID)
		}
	}
	// Another session of the same user may run it, once.
	if got := hold(t, s, alice, "app-db", "s3", "DELETE FROM t WHERE id = $1", []byte("5")); !got.Released || got.ReviewID != r.ReviewID {
		t.Fatalf("identical statement: %+v, want released by %s", got, r.ReviewID)
	}
	if got := hold(t, s, alice, "app-db", "s3", "DELETE FROM t WHERE id = $1", []byte("5")); got.Released {
		t.Fatal("one approval released two executions")
	}
}

// TestLiveApprovalReleasesOnlyItsSession: approving a live hold wakes only
// the session that holds it; the release is used once.
func TestLiveApprovalReleasesOnlyItsSession(t *testing.T) {
	s, st, _ := newService(t)
	ctx := context.Background()
	r1 := hold(t, s, alice, "app-db", "s1", "DELETE FROM t", nil)
	r2 := hold(t, s, alice, "app-db", "s2", "DELETE FROM t", nil)
	if _, err := s.AwaitHold(ctx, "s2", r1.ReviewID); err == nil {
		t.Fatal("session s2 waited on the review of s1")
	}
	if _, err := s.Decide(ctx, dave, r1.ReviewID, true, ""); err != nil {
		t.Fatal(err)
	}
	out, err := s.AwaitHold(ctx, "s1", r1.ReviewID)
	if err != nil || out.Outcome != protocol.HoldApproved || out.Reviewer != "dave" {
		t.Fatalf("s1: %+v, %v", out, err)
	}
	if _, err := s.AwaitHold(ctx, "s1", r1.ReviewID); err == nil {
		t.Fatal("an approval was released twice")
	}
	rv, _ := st.Review(ctx, r2.ReviewID)
	if rv.Status != store.ReviewPending {
		t.Fatalf("s2's review = %s, want pending", rv.Status)
	}
}

// TestReviewersOnly: the requester never decides, nor does anyone outside
// the reviewer groups; min_approvals counts distinct reviewers.
func TestReviewersOnly(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	r := hold(t, s, alice, "app-db", "s1", "DELETE FROM t", nil)
	if _, err := s.Decide(ctx, alice, r.ReviewID, true, ""); !errors.Is(err, review.ErrSelfReview) {
		t.Errorf("alice (in dba) approving her own: %v", err)
	}
	if _, err := s.Decide(ctx, carol, r.ReviewID, true, ""); !errors.Is(err, review.ErrNotReviewer) {
		t.Errorf("carol (not in dba) approving: %v", err)
	}
	req, err := s.RequestAccess(ctx, carol, "jit-db", time.Hour, "INC-4211")
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []protocol.Identity{dave, dave} {
		if rv, err := s.Decide(ctx, who, req.ID, true, ""); err != nil || rv.Status != store.ReviewPending {
			t.Fatalf("approval by %s: %+v %v", who.Name, rv, err)
		}
	}
	if rv, err := s.Decide(ctx, erin, req.ID, true, ""); err != nil || rv.Status != store.ReviewApproved {
		t.Fatalf("second reviewer: %+v %v", rv, err)
	}
	if _, err := s.RequestAccess(ctx, carol, "app-db", time.Hour, ""); !errors.Is(err, review.ErrNoApproval) {
		t.Errorf("requesting a connection without require_approval: %v", err)
	}
	if _, err := s.RequestAccess(ctx, dave, "jit-db", time.Hour, ""); !errors.Is(err, review.ErrNoAccess) {
		t.Errorf("dave (not in allow_groups) requesting: %v", err)
	}
	if _, err := s.RequestAccess(ctx, carol, "jit-db", 9*time.Hour, ""); !errors.Is(err, review.ErrInvalid) {
		t.Errorf("past max_grant: %v", err)
	}
}

// TestExpiredGrantStartsNothing: a grant lets sessions start until it
// expires, then never again.
func TestExpiredGrantStartsNothing(t *testing.T) {
	s, _, clk := newService(t)
	ctx := context.Background()
	if _, err := s.Grant(ctx, carol, "jit-db"); !errors.Is(err, review.ErrNotFound) {
		t.Fatalf("grant before any request: %v", err)
	}
	req, err := s.RequestAccess(ctx, carol, "jit-db", time.Hour, "INC-4211")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Grant(ctx, carol, "jit-db"); !errors.Is(err, review.ErrNotFound) {
		t.Fatalf("grant of a pending request: %v", err)
	}
	s.Decide(ctx, dave, req.ID, true, "")
	s.Decide(ctx, erin, req.ID, true, "")
	g, err := s.Grant(ctx, carol, "jit-db")
	if err != nil || g.ID != req.ID {
		t.Fatalf("grant: %+v %v", g, err)
	}
	if _, err := s.Grant(ctx, alice, "jit-db"); !errors.Is(err, review.ErrNotFound) {
		t.Fatalf("carol's grant serves alice: %v", err)
	}
	clk.add(time.Hour)
	if _, err := s.Grant(ctx, carol, "jit-db"); !errors.Is(err, review.ErrNotFound) {
		t.Fatalf("expired grant: %v", err)
	}
	// A pending review past request_ttl can no longer be approved.
	req2, _ := s.RequestAccess(ctx, carol, "jit-db", time.Hour, "again")
	clk.add(25 * time.Hour)
	if _, err := s.Decide(ctx, dave, req2.ID, true, ""); !errors.Is(err, review.ErrDecided) {
		t.Fatalf("approving an expired request: %v", err)
	}
}

// TestWithdrawnHoldNeverReleased: a hold whose client went away is
// withdrawn; no later approval releases it, live or on a re-run.
func TestWithdrawnHoldNeverReleased(t *testing.T) {
	s, st, _ := newService(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := hold(t, s, alice, "app-db", "s1", "DELETE FROM t", nil)
	cancel()
	if _, err := s.AwaitHold(ctx, "s1", r.ReviewID); err == nil {
		t.Fatal("AwaitHold of a client that left succeeded")
	}
	rv, _ := st.Review(context.Background(), r.ReviewID)
	if rv.Status != store.ReviewCancelled {
		t.Fatalf("status %s, want cancelled", rv.Status)
	}
	if _, err := s.Decide(context.Background(), dave, r.ReviewID, true, ""); !errors.Is(err, review.ErrDecided) {
		t.Fatalf("approving a withdrawn hold: %v", err)
	}
	if got := hold(t, s, alice, "app-db", "s2", "DELETE FROM t", nil); got.Released {
		t.Fatal("a withdrawn hold was released on a re-run")
	}
}

// memAudit records audit records.
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

func (m *memAudit) details() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.recs {
		out = append(out, r.Data.(audit.ReviewData).Detail)
	}
	return strings.Join(out, "\n")
}

// TestNotifierSignsAndRetries: a notification is signed with the webhook's
// secret and retried with backoff until the receiver takes it.
func TestNotifierSignsAndRetries(t *testing.T) {
	var calls atomic.Int32
	got := make(chan review.Message, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(review.HeaderSignature) != review.Sign([]byte("s3cret"), r.Header.Get(review.HeaderTimestamp), body) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m review.Message
		_ = json.Unmarshal(body, &m)
		got <- m
	}))
	defer srv.Close()
	au := &memAudit{}
	n := review.NewNotifier(review.NotifierOptions{
		Webhooks: []review.Webhook{{URL: srv.URL + "/token-in-path", Format: "json", Secret: secret.NewValue([]byte("s3cret")),
			Timeout: time.Second, MaxAttempts: 5}},
		QueueSize: 10, Audit: au, Backoff: 10 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); n.Wait() }()
	n.Start(ctx)
	n.Send(ctx, audit.KindReviewHold, store.Review{ID: "r1", Kind: store.ReviewStatement, Identity: "alice", Text: "DELETE FROM t"}, "")
	select {
	case m := <-got:
		if m.Event != audit.KindReviewHold || m.Review.ID != "r1" || m.Review.Text != "DELETE FROM t" {
			t.Fatalf("message = %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no delivery after %d attempts", calls.Load())
	}
	if calls.Load() != 3 {
		t.Errorf("%d attempts, want 3", calls.Load())
	}
}

// TestNotifierNeverBlocks: with the queue full, Send returns at once and
// the dropped notification is audited, without the webhook's URL.
func TestNotifierNeverBlocks(t *testing.T) {
	au := &memAudit{}
	n := review.NewNotifier(review.NotifierOptions{
		Webhooks:  []review.Webhook{{URL: "https://hooks.example.com/services/SECRET-PATH", Format: "slack", Timeout: time.Second, MaxAttempts: 1}},
		QueueSize: 2, Audit: au,
	})
	start := time.Now()
	for range 100 { // nobody sends: the queue stays full
		n.Send(context.Background(), audit.KindReviewRequest, store.Review{ID: "r1"}, "")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Send blocked for %v", took)
	}
	d := au.details()
	if strings.Count(d, "dropped") != 98 || strings.Contains(d, "SECRET-PATH") || !strings.Contains(d, "hooks.example.com") {
		t.Fatalf("audited drops:\n%.300s", d)
	}
}

// TestOnePersonIsOneReviewer: a person the gateway knows under two names
// (a static identity with their email, and their sign-in through the
// identity provider, which is named by the email) neither decides their
// own review under the other name nor counts twice towards min_approvals.
func TestOnePersonIsOneReviewer(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	aliceSSO := protocol.Identity{Name: "alice@example.com", Email: "alice@example.com", Groups: []string{"dba"}}
	daveSSO := protocol.Identity{Name: "dave@example.com", Email: "dave@example.com", Groups: []string{"dba"}}

	r := hold(t, s, alice, "app-db", "s1", "DELETE FROM t", nil)
	if _, err := s.Decide(ctx, aliceSSO, r.ReviewID, true, ""); !errors.Is(err, review.ErrSelfReview) {
		t.Errorf("alice signed in through the IdP approving her static identity's statement: %v", err)
	}
	r = hold(t, s, aliceSSO, "app-db", "s2", "DELETE FROM t", nil)
	if _, err := s.Decide(ctx, alice, r.ReviewID, true, ""); !errors.Is(err, review.ErrSelfReview) {
		t.Errorf("alice's static identity approving her IdP identity's statement: %v", err)
	}

	req, err := s.RequestAccess(ctx, carol, "jit-db", time.Hour, "INC-4211")
	if err != nil {
		t.Fatal(err)
	}
	if rv, err := s.Decide(ctx, dave, req.ID, true, ""); err != nil || rv.Status != store.ReviewPending {
		t.Fatalf("dave's approval: %+v %v", rv, err)
	}
	if rv, err := s.Decide(ctx, daveSSO, req.ID, true, ""); err == nil && rv.Status != store.ReviewPending {
		t.Fatalf("dave approving again under his IdP name decided the request (min_approvals 2): %+v", rv)
	}
	if rv, err := s.Decide(ctx, erin, req.ID, true, ""); err != nil || rv.Status != store.ReviewApproved || len(rv.Approvals) != 2 {
		t.Fatalf("erin's approval: %+v %v", rv, err)
	}
}

// TestSlackTextIsEscaped: a statement's text is the requester's; in a
// Slack message it stays inside its code block, and Slack's control
// sequences (<!channel>, links) in it are shown, not acted on. An
// undeliverable notification's audit event names its review.
func TestSlackTextIsEscaped(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		_ = json.NewDecoder(r.Body).Decode(&m)
		got <- m.Text
	}))
	defer srv.Close()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
	defer dead.Close()
	au := &memAudit{}
	n := review.NewNotifier(review.NotifierOptions{
		Webhooks: []review.Webhook{{URL: srv.URL, Format: "slack", Timeout: time.Second, MaxAttempts: 1},
			{URL: dead.URL, Format: "json", Timeout: time.Second, MaxAttempts: 1}},
		QueueSize: 10, Audit: au,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); n.Wait() }()
	n.Start(ctx)
	text := "DELETE FROM t /* ```\n<!channel> *dave* approved this: <https://evil.example|gatewayctl review approve r1> */"
	n.Send(ctx, audit.KindReviewHold, store.Review{ID: "r1", Kind: store.ReviewStatement, Identity: "alice", Text: text,
		ParamsShown: []string{"('`<!here>`')"}}, "")
	var s string
	select {
	case s = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	if strings.Count(s, "```") != 2 || strings.Contains(s, "<!") || strings.Contains(s, "<https://evil") {
		t.Errorf("slack text lets the statement out of its code block or acts on it:\n%s", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(au.details(), "undeliverable") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	au.mu.Lock()
	defer au.mu.Unlock()
	for _, r := range au.recs {
		if d := r.Data.(audit.ReviewData); strings.Contains(d.Detail, "undeliverable") && d.ReviewID != "r1" {
			t.Errorf("undeliverable notification audited without its review: %+v", d)
		}
	}
}

// TestLateApprovalExpires: an approval that came after its hold timed out
// may be used until the review's expiry, not later.
func TestLateApprovalExpires(t *testing.T) {
	s, _, clk := newService(t)
	ctx := context.Background()
	r := hold(t, s, alice, "app-db", "s1", "DELETE FROM t WHERE id = $1", []byte("7"))
	if out, err := s.AwaitHold(ctx, "s1", r.ReviewID); err != nil || out.Outcome != protocol.HoldTimedOut {
		t.Fatalf("AwaitHold = %+v, %v; want a timeout", out, err)
	}
	clk.add(time.Minute)
	if _, err := s.Decide(ctx, dave, r.ReviewID, true, ""); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	clk.add(25 * time.Hour) // past request_ttl (24h by default)
	if got := hold(t, s, alice, "app-db", "s2", "DELETE FROM t WHERE id = $1", []byte("7")); got.Released {
		t.Fatalf("an approval was used %v after its review expired", 25*time.Hour)
	}
}

// TestPendingReviewsAreBounded: one identity cannot flood reviewers, the
// webhooks and the audit log; others are not affected.
func TestPendingReviewsAreBounded(t *testing.T) {
	s, _, _ := newService(t)
	for i := range review.MaxPendingPerIdentity {
		hold(t, s, alice, "app-db", "s1", fmt.Sprintf("DELETE FROM t WHERE id = %d", i), nil)
	}
	_, err := s.Hold(context.Background(), review.HoldRequest{
		HoldRequest: protocol.HoldRequest{SessionID: "s1", Request: "execute", Text: "DELETE FROM t WHERE id = -1"},
		Identity:    alice, Connection: "app-db",
	})
	if !errors.Is(err, review.ErrTooManyPending) || !errors.Is(err, protocol.ErrHoldUnavailable) {
		t.Fatalf("hold %d: %v, want refused as too many pending", review.MaxPendingPerIdentity+1, err)
	}
	hold(t, s, carol, "app-db", "s2", "DELETE FROM t WHERE id = 1", nil)
}

// TestOrphanedHoldsAreForgotten: a hold whose handler never waits for it
// (a lost plugin call) does not stay in memory for ever.
func TestOrphanedHoldsAreForgotten(t *testing.T) {
	s, _, clk := newService(t)
	hold(t, s, alice, "app-db", "s1", "DELETE FROM t WHERE id = 1", nil)
	if n := s.Holding(); n != 1 {
		t.Fatalf("Holding = %d, want 1", n)
	}
	s.Expire(context.Background())
	if n := s.Holding(); n != 1 {
		t.Fatalf("a live hold was forgotten: Holding = %d", n)
	}
	clk.add(time.Hour)
	s.Expire(context.Background())
	if n := s.Holding(); n != 0 {
		t.Fatalf("Holding = %d after the hold ended long ago, want 0", n)
	}
}
