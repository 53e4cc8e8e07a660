package protocol

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Holder is implemented by a Host that can hold a request for approval
// instead of refusing it. A handler that gets a Review verdict from Admit
// and whose Host is a Holder holds the request: it calls Hold, tells the
// client at once that the request waits (naming the review and its
// reviewers), then calls AwaitHold and forwards the request only on
// HoldApproved, exactly as it was held. Without a Holder, or when Hold
// fails, a Review verdict is a refusal. The plugin transport carries it:
// a handler run as a plugin sees a Holder whose Hold fails with
// ErrHoldUnavailable when gatewayd's own Host holds nothing.
type Holder interface {
	// Hold records a held request and announces it to its reviewers. When
	// an earlier hold of the byte-identical request by the same identity
	// on the same connection timed out and was approved since, Hold
	// releases that approval instead: Released is set and the request
	// runs at once, without AwaitHold.
	Hold(ctx context.Context, req HoldRequest) (*HoldResponse, error)
	// AwaitHold waits until the held request is decided or its hold
	// times out. ctx ending means the client went away: the review is
	// withdrawn and its request never runs. A non-nil error means the
	// request must not run.
	AwaitHold(ctx context.Context, req AwaitHoldRequest) (*AwaitHoldResponse, error)
}

// ErrHoldUnavailable is returned by Hold when the request cannot be held
// (the session's identity could be its only reviewer, the store cannot
// record it): the handler refuses the request.
var ErrHoldUnavailable = errors.New("protocol: the request cannot be held for approval")

// HoldRequest describes a request Admit answered with Review.
type HoldRequest struct {
	SessionID string
	// Request is the request's kind in its protocol ("query", "execute",
	// "exec"); Text its text, byte for byte as the client sent it.
	Request string
	Text    string
	// Params are the encoded parameters the request runs with (for
	// PostgreSQL's extended protocol, the Bind messages' parameter and
	// format sections); an approval binds them as well as Text.
	Params []byte
	// ParamsShown are the parameters as reviewers see them.
	ParamsShown []string
	// Reviewers and Reason are the verdict's.
	Reviewers []string
	Reason    string
}

// HoldResponse names the review a request waits for.
type HoldResponse struct {
	ReviewID string
	// Reviewers are the groups that may approve.
	Reviewers []string
	// Until is when the hold times out.
	Until time.Time
	// Released reports that an approval of an earlier identical hold was
	// used: the request runs now, once.
	Released bool
}

// AwaitHoldRequest names a held request.
type AwaitHoldRequest struct {
	SessionID string
	ReviewID  string
}

// Outcomes of a hold.
const (
	HoldApproved = "approved"
	HoldDenied   = "denied"
	HoldTimedOut = "timeout"
)

// AwaitHoldResponse is how a hold ended.
type AwaitHoldResponse struct {
	// Outcome is HoldApproved (forward the request, once), HoldDenied or
	// HoldTimedOut.
	Outcome string
	// Reviewer decided; Reason is a denial's reason.
	Reviewer string
	Reason   string
}

// ErrApprovalRequired is returned by OpenSession when the connection
// requires an approved access request and the identity has no grant
// running. It is an ErrNoAccess; handlers may say more with it, since the
// identity is one the connection allows.
var ErrApprovalRequired = fmt.Errorf("%w: the connection requires an approved access request", ErrNoAccess)
