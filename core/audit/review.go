package audit

import "time"

// Event kinds of access requests and held statements (package review).
const (
	KindReviewRequest = "review.request" // an access request was made
	KindReviewHold    = "review.hold"    // a statement was held for approval
	KindReviewApprove = "review.approve" // one reviewer approved
	KindReviewDeny    = "review.deny"    // a reviewer denied
	KindReviewRelease = "review.release" // an approved statement was let through
	KindReviewTimeout = "review.timeout" // a held statement's client stopped waiting
	KindReviewCancel  = "review.cancel"  // a held statement's client went away
	KindReviewExpire  = "review.expire"  // a review expired undecided, or a grant ended
	KindReviewNotify  = "review.notify"  // a notification was dropped or could not be delivered
)

// ReviewData is the payload of the review.* events.
type ReviewData struct {
	ReviewID string `json:"review_id"`
	Kind     string `json:"kind"` // "access" or "statement"
	// Status is the review's status after the event.
	Status string `json:"status"`
	// Requester is the identity that asked (the event's identity is who
	// acted: the requester, or a reviewer).
	Requester string `json:"requester,omitempty"`
	// SessionID is the session that held the statement; the event's own
	// session is where it happened (for a release, where it ran).
	SessionID string   `json:"session_id,omitempty"`
	Request   string   `json:"request,omitempty"` // "query", "execute", "exec"
	Text      string   `json:"text,omitempty"`
	Params    []string `json:"params,omitempty"` // the Bind parameters, as shown to reviewers
	Digest    string   `json:"digest,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Reviewers []string `json:"reviewers,omitempty"`
	// Approvals counts the approvals so far, of MinApprovals.
	Approvals    int       `json:"approvals,omitempty"`
	MinApprovals int       `json:"min_approvals,omitempty"`
	Duration     int64     `json:"duration_ns,omitempty"` // of an access grant
	Expires      time.Time `json:"expires,omitzero"`
	Detail       string    `json:"detail,omitempty"`
}
