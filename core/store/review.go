package store

import (
	"context"
	"errors"
	"time"
)

// ErrConflict is returned when a review is not in the state a change needs:
// deciding a review that is no longer pending, releasing one twice.
var ErrConflict = errors.New("store: review not in the required state")

// Review kinds.
const (
	// ReviewAccess asks for a time-boxed grant to use a connection.
	ReviewAccess = "access"
	// ReviewStatement asks for one execution of one held request.
	ReviewStatement = "statement"
)

// Review states. A review starts pending and is decided once.
const (
	ReviewPending   = "pending"
	ReviewApproved  = "approved"
	ReviewDenied    = "denied"
	ReviewCancelled = "cancelled" // the held statement's client went away
	ReviewExpired   = "expired"   // nobody decided in time
)

// ReviewStore keeps access requests and held statements waiting for
// reviewers, and their decisions. It is part of Store.
type ReviewStore interface {
	// CreateReview records a new pending review.
	CreateReview(ctx context.Context, r Review) error
	// Review returns one review, or ErrNotFound.
	Review(ctx context.Context, id string) (Review, error)
	// Reviews lists reviews, newest first.
	Reviews(ctx context.Context, f ReviewFilter) ([]Review, error)
	// DecideReview records one reviewer's decision on a pending review, in
	// one transaction: an approval is added to Approvals (a reviewer
	// counts once, under Reviewer or any of its Aliases, compared without
	// regard to case) and the review becomes approved once it has
	// MinApprovals of them; a denial decides it at once. It returns the
	// review as it is after the decision, or ErrConflict when it is no
	// longer pending.
	DecideReview(ctx context.Context, d ReviewDecision) (Review, error)
	// ReleaseReview marks an approved statement review as executed, once:
	// a second call, or a call on a review that is not approved, returns
	// ErrConflict.
	ReleaseReview(ctx context.Context, id, sessionID string, at time.Time) error
	// CloseReview moves a pending review to status (ReviewCancelled or
	// ReviewExpired); ErrConflict when it is no longer pending.
	CloseReview(ctx context.Context, id, status string, at time.Time) error
}

// Review is an access request or a held request waiting for reviewers.
type Review struct {
	ID     string
	Kind   string // ReviewAccess or ReviewStatement
	Status string
	// Identity asked; Connection is where.
	Identity   string
	Connection string
	// SessionID is the session that held the statement (statement reviews).
	SessionID string
	// Request is the request's kind in its protocol ("query", "execute",
	// "exec"); Text its text; Params the encoded Bind parameters of an
	// extended-protocol execution (opaque to the store). Digest is the hex
	// sha256 that binds them together (see package review).
	Request string
	Text    string
	Params  []byte
	Digest  string
	// ParamsShown are the parameters as reviewers see them.
	ParamsShown []string
	// Reason is the requester's reason (access) or the policy's (statement).
	Reason string
	// Duration is the grant an access request asks for.
	Duration time.Duration
	// Reviewers are the groups whose members may decide; MinApprovals how
	// many distinct approvals it takes.
	Reviewers    []string
	MinApprovals int
	Created      time.Time
	// HoldUntil is when the live hold of a statement ends.
	HoldUntil time.Time
	// Expires is when a pending review expires, and once an access review
	// is approved, when its grant ends.
	Expires   time.Time
	Approvals []Approval
	// Decided is when the review was approved, denied, cancelled or
	// expired; DeniedBy and DenyReason say who denied it and why.
	Decided    time.Time
	DeniedBy   string
	DenyReason string
	// Released is when the approved statement was executed, and in which
	// session.
	Released        time.Time
	ReleasedSession string
}

// Approval is one reviewer's approval.
type Approval struct {
	Reviewer string
	Time     time.Time
}

// ReviewDecision is one reviewer's decision.
type ReviewDecision struct {
	ID       string
	Reviewer string
	// Aliases are other names of the same person: an approval under any
	// of them is this reviewer's.
	Aliases []string
	Approve bool
	Reason  string // why it was denied
	Time    time.Time
}

// ReviewFilter selects reviews. Zero fields match everything.
type ReviewFilter struct {
	Status     string
	Kind       string
	Identity   string
	Connection string
	Digest     string
	Limit      int // 0 means a default of 100
}
