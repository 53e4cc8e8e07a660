package storetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// reviewTests are the conformance tests of store.ReviewStore.
var reviewTests = []struct {
	name string
	fn   func(t *testing.T, st store.Store)
}{
	{"ReviewRoundTrip", testReviewRoundTrip},
	{"ReviewNotFound", testReviewNotFound},
	{"ReviewApprovalsCountOnce", testReviewApprovalsCountOnce},
	{"ReviewDenyDecides", testReviewDenyDecides},
	{"ReviewReleasedOnce", testReviewReleasedOnce},
	{"ReviewReleaseConcurrent", testReviewReleaseConcurrent},
	{"ReviewClose", testReviewClose},
	{"ReviewsFilter", testReviewsFilter},
}

func review(id, kind, identity string, created time.Time) store.Review {
	return store.Review{
		ID: id, Kind: kind, Status: store.ReviewPending, Identity: identity, Connection: "app-db",
		SessionID: "s-" + id, Request: "query", Text: "DELETE FROM t", Params: []byte{0, 1, 2}, ParamsShown: []string{"42", "NULL"},
		Digest: "d-" + id, Reason: "INC-1", Duration: time.Hour, Reviewers: []string{"dba", "sre"},
		MinApprovals: 2, Created: created, HoldUntil: created.Add(time.Minute), Expires: created.Add(24 * time.Hour),
	}
}

func testReviewRoundTrip(t *testing.T, st store.Store) {
	ctx := context.Background()
	want := review("r1", store.ReviewStatement, "alice", base)
	if err := st.CreateReview(ctx, want); err != nil {
		t.Fatalf("CreateReview: %v", err)
	}
	got, err := st.Review(ctx, "r1")
	if err != nil {
		t.Fatalf("Review: %v", err)
	}
	want.Created, want.HoldUntil, want.Expires = want.Created.UTC(), want.HoldUntil.UTC(), want.Expires.UTC()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Review = %+v, want %+v", got, want)
	}
	if err := st.CreateReview(ctx, want); err == nil {
		t.Error("CreateReview with a duplicate id succeeded")
	}
}

func testReviewNotFound(t *testing.T, st store.Store) {
	if _, err := st.Review(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Review(nope) = %v, want ErrNotFound", err)
	}
	_, err := st.DecideReview(context.Background(), store.ReviewDecision{ID: "nope", Reviewer: "bob", Approve: true, Time: base})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DecideReview(nope) = %v, want ErrNotFound", err)
	}
}

func testReviewApprovalsCountOnce(t *testing.T, st store.Store) {
	ctx := context.Background()
	if err := st.CreateReview(ctx, review("r1", store.ReviewAccess, "alice", base)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the same reviewer twice is one approval
		r, err := st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "bob", Approve: true, Time: base.Add(time.Second)})
		if err != nil {
			t.Fatalf("DecideReview: %v", err)
		}
		if r.Status != store.ReviewPending || len(r.Approvals) != 1 {
			t.Fatalf("after bob: status %s, %d approvals; want pending, 1", r.Status, len(r.Approvals))
		}
	}
	// bob under another name of his is still bob.
	r, err := st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "bob@example.com",
		Aliases: []string{"bob@example.com", "BOB"}, Approve: true, Time: base.Add(time.Second)})
	if err != nil || r.Status != store.ReviewPending || len(r.Approvals) != 1 {
		t.Fatalf("after bob under an alias: %+v %v; want pending, 1 approval", r, err)
	}
	at := base.Add(time.Minute)
	r, err = st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "carol", Approve: true, Time: at})
	if err != nil {
		t.Fatalf("DecideReview: %v", err)
	}
	if r.Status != store.ReviewApproved || !r.Decided.Equal(at) || !r.Expires.Equal(at.Add(time.Hour)) {
		t.Errorf("after carol: %s decided %v expires %v; want approved, %v, grant of an hour", r.Status, r.Decided, r.Expires, at)
	}
	got, err := st.Review(ctx, "r1")
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("stored review = %+v, %v; want %+v", got, err, r)
	}
	if _, err := st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "dave", Time: at}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("deciding an approved review: %v, want ErrConflict", err)
	}
}

func testReviewDenyDecides(t *testing.T, st store.Store) {
	ctx := context.Background()
	if err := st.CreateReview(ctx, review("r1", store.ReviewStatement, "alice", base)); err != nil {
		t.Fatal(err)
	}
	r, err := st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "bob", Reason: "not during business hours", Time: base})
	if err != nil {
		t.Fatalf("DecideReview: %v", err)
	}
	if r.Status != store.ReviewDenied || r.DeniedBy != "bob" || r.DenyReason != "not during business hours" {
		t.Errorf("denied review = %+v", r)
	}
	if err := st.ReleaseReview(ctx, "r1", "s", base); !errors.Is(err, store.ErrConflict) {
		t.Errorf("releasing a denied review: %v, want ErrConflict", err)
	}
}

func testReviewReleasedOnce(t *testing.T, st store.Store) {
	ctx := context.Background()
	r := review("r1", store.ReviewStatement, "alice", base)
	r.MinApprovals = 1
	if err := st.CreateReview(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseReview(ctx, "r1", "s1", base); !errors.Is(err, store.ErrConflict) {
		t.Errorf("releasing a pending review: %v, want ErrConflict", err)
	}
	if _, err := st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "bob", Approve: true, Time: base}); err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseReview(ctx, "r1", "s1", base.Add(time.Second)); err != nil {
		t.Fatalf("ReleaseReview: %v", err)
	}
	if err := st.ReleaseReview(ctx, "r1", "s1", base.Add(2*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second ReleaseReview: %v, want ErrConflict", err)
	}
	got, _ := st.Review(ctx, "r1")
	if got.ReleasedSession != "s1" || !got.Released.Equal(base.Add(time.Second)) {
		t.Errorf("released = %v in %q", got.Released, got.ReleasedSession)
	}
}

func testReviewReleaseConcurrent(t *testing.T, st store.Store) {
	ctx := context.Background()
	r := review("r1", store.ReviewStatement, "alice", base)
	r.MinApprovals = 1
	if err := st.CreateReview(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "bob", Approve: true, Time: base}); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if st.ReleaseReview(ctx, "r1", "s1", base) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("%d concurrent releases succeeded, want 1", ok.Load())
	}
}

func testReviewClose(t *testing.T, st store.Store) {
	ctx := context.Background()
	if err := st.CreateReview(ctx, review("r1", store.ReviewStatement, "alice", base)); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseReview(ctx, "r1", store.ReviewApproved, base); err == nil {
		t.Error("CloseReview to approved succeeded")
	}
	if err := st.CloseReview(ctx, "r1", store.ReviewCancelled, base); err != nil {
		t.Fatalf("CloseReview: %v", err)
	}
	if err := st.CloseReview(ctx, "r1", store.ReviewExpired, base); !errors.Is(err, store.ErrConflict) {
		t.Errorf("closing a cancelled review: %v, want ErrConflict", err)
	}
	if _, err := st.DecideReview(ctx, store.ReviewDecision{ID: "r1", Reviewer: "bob", Approve: true, Time: base}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("approving a cancelled review: %v, want ErrConflict", err)
	}
}

func testReviewsFilter(t *testing.T, st store.Store) {
	ctx := context.Background()
	for i, id := range []string{"r1", "r2", "r3"} {
		kind := store.ReviewStatement
		if id == "r2" {
			kind = store.ReviewAccess
		}
		if err := st.CreateReview(ctx, review(id, kind, "alice", base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseReview(ctx, "r3", store.ReviewCancelled, base); err != nil {
		t.Fatal(err)
	}
	ids := func(f store.ReviewFilter) []string {
		rs, err := st.Reviews(ctx, f)
		if err != nil {
			t.Fatalf("Reviews(%+v): %v", f, err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tt := range []struct {
		f    store.ReviewFilter
		want []string
	}{
		{store.ReviewFilter{}, []string{"r3", "r2", "r1"}},
		{store.ReviewFilter{Status: store.ReviewPending}, []string{"r2", "r1"}},
		{store.ReviewFilter{Kind: store.ReviewAccess}, []string{"r2"}},
		{store.ReviewFilter{Digest: "d-r1"}, []string{"r1"}},
		{store.ReviewFilter{Identity: "bob"}, nil},
		{store.ReviewFilter{Limit: 1}, []string{"r3"}},
	} {
		if got := ids(tt.f); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Reviews(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
}
