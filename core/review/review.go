// Package review holds requests for human approval: access requests that
// become time-boxed grants to a connection, and single statements held in a
// live session until a reviewer lets exactly that statement run once. It
// keeps reviews in the store, audits every step and announces each review
// to webhooks (notify.go).
package review

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// MaxPendingPerIdentity bounds the reviews one identity may have pending at
// once (access requests and held statements together), so that nobody can
// flood reviewers, webhooks and the audit log.
const MaxPendingPerIdentity = 50

// Errors of the review service. The API maps them to status codes.
var (
	ErrNotFound        = errors.New("review: no such review")
	ErrSelfReview      = errors.New("review: a requester cannot decide their own request")
	ErrNotReviewer     = errors.New("review: you are not in the review's reviewer groups")
	ErrDecided         = errors.New("review: the review is no longer pending")
	ErrNoApproval      = errors.New("review: the connection does not require approval")
	ErrNoAccess        = errors.New("review: no such connection or access denied")
	ErrInvalid         = errors.New("review: invalid request")
	ErrUnavailable     = errors.New("review: cannot record the review now")
	ErrTooManyPending  = fmt.Errorf("%w: you have %d reviews waiting for a decision; wait for them to be decided or to expire", ErrInvalid, MaxPendingPerIdentity)
	errUnknownHold     = errors.New("review: no such held request in this session")
	errHoldNotReleased = errors.New("review: the approval was already used")
)

// Auditor appends audit records; *audit.Writer is one.
type Auditor interface {
	Append(ctx context.Context, r audit.Record) error
}

// Options configure a Service.
type Options struct {
	Store  store.Store
	Audit  Auditor
	Config *config.Config
	// Notifier announces reviews; nil sends nothing.
	Notifier *Notifier
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Events counts review steps by audit event kind (label "event");
	// nil counts nothing.
	Events *prometheus.CounterVec
}

// Service is the review service. It is safe for concurrent use.
type Service struct {
	st     store.Store
	audit  Auditor
	cfg    *config.Config
	notify *Notifier
	log    *slog.Logger
	now    func() time.Time
	events *prometheus.CounterVec

	mu sync.Mutex
	// waiting are the live holds by review id: a decision wakes the
	// session that waits for it.
	waiting map[string]*hold
}

// hold is one live held request.
type hold struct {
	review  store.Review
	decided chan struct{} // closed on a decision
}

// New returns a review service.
func New(opts Options) *Service {
	s := &Service{st: opts.Store, audit: opts.Audit, cfg: opts.Config, notify: opts.Notifier, log: opts.Log,
		now: opts.Now, events: opts.Events, waiting: map[string]*hold{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Digest binds a statement review to what it releases: the identity, the
// connection, the request's kind, its exact text and its encoded
// parameters. Every field is length-prefixed, so that no two different
// bindings share a digest by moving bytes from one field to the next.
func Digest(identity, connection, request, text string, params []byte) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range [][]byte{[]byte("gatewayd review v1"), []byte(identity), []byte(connection), []byte(request), []byte(text), params} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("review id: %w", err)
	}
	return id.String(), nil
}

// RequestAccess records an access request of id for a connection that
// requires approval.
func (s *Service) RequestAccess(ctx context.Context, id protocol.Identity, connection string, d time.Duration, reason string) (store.Review, error) {
	cn, ok := s.cfg.ConnectionByName(connection)
	if !ok || !inAnyGroup(id, cn.AllowGroups) {
		return store.Review{}, ErrNoAccess
	}
	if !cn.RequireApproval {
		return store.Review{}, fmt.Errorf("%w: %q", ErrNoApproval, connection)
	}
	if d <= 0 || d > s.cfg.Review.MaxGrant.Duration {
		return store.Review{}, fmt.Errorf("%w: the duration must be positive and at most %v", ErrInvalid, s.cfg.Review.MaxGrant.Duration)
	}
	if len(reason) > 1000 {
		return store.Review{}, fmt.Errorf("%w: the reason is longer than 1000 bytes", ErrInvalid)
	}
	if err := s.checkPending(ctx, id.Name); err != nil {
		return store.Review{}, err
	}
	rid, err := newID()
	if err != nil {
		return store.Review{}, err
	}
	now := s.now().UTC()
	r := store.Review{
		ID: rid, Kind: store.ReviewAccess, Status: store.ReviewPending, Identity: id.Name, Connection: cn.Name,
		Reason: reason, Duration: d, Reviewers: slices.Clone(cn.Reviewers), MinApprovals: cn.MinApprovals,
		Created: now, Expires: now.Add(s.cfg.Review.RequestTTL.Duration),
	}
	if err := s.st.CreateReview(ctx, r); err != nil {
		return store.Review{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.event(ctx, audit.KindReviewRequest, id.Name, "", r, "")
	s.notify.Send(ctx, audit.KindReviewRequest, r, "")
	return r, nil
}

// Review returns one review, for the requester, its reviewers and admins
// (visible reports whether the caller may see it).
func (s *Service) Review(ctx context.Context, id string) (store.Review, error) {
	r, err := s.st.Review(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Review{}, ErrNotFound
	}
	if err != nil {
		return store.Review{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return r, nil
}

// Reviews lists reviews matching f.
func (s *Service) Reviews(ctx context.Context, f store.ReviewFilter) ([]store.Review, error) {
	rs, err := s.st.Reviews(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return rs, nil
}

// CanDecide reports whether reviewer may decide r: a member of one of its
// reviewer groups who is not its requester under any of their names (see
// Names).
func (s *Service) CanDecide(reviewer protocol.Identity, r store.Review) error {
	if slices.ContainsFunc(s.Names(reviewer), func(n string) bool { return strings.EqualFold(n, r.Identity) }) {
		return ErrSelfReview
	}
	if !inAnyGroup(reviewer, r.Reviewers) {
		return ErrNotReviewer
	}
	return nil
}

// Names returns the names under which the person behind id may act: its
// name, its email (people who sign in through the identity provider are
// named by their email), and the static identities of the same name or
// email. A requester is refused under each of them, and they count as one
// reviewer towards min_approvals.
func (s *Service) Names(id protocol.Identity) []string {
	names := []string{id.Name}
	if id.Email != "" {
		names = append(names, id.Email)
	}
	keys := slices.Clone(names)
	same := func(v string) bool {
		return v != "" && slices.ContainsFunc(keys, func(k string) bool { return strings.EqualFold(k, v) })
	}
	for _, st := range s.cfg.Identity.Static {
		if same(st.Name) || same(st.Email) {
			names = append(names, st.Name)
			if st.Email != "" {
				names = append(names, st.Email)
			}
		}
	}
	return names
}

// Decide records a reviewer's approval or denial. It wakes the session that
// holds the statement, if one still does.
func (s *Service) Decide(ctx context.Context, reviewer protocol.Identity, id string, approve bool, reason string) (store.Review, error) {
	r, err := s.Review(ctx, id)
	if err != nil {
		return store.Review{}, err
	}
	if err := s.CanDecide(reviewer, r); err != nil {
		return store.Review{}, err
	}
	if len(reason) > 1000 {
		return store.Review{}, fmt.Errorf("%w: the reason is longer than 1000 bytes", ErrInvalid)
	}
	now := s.now().UTC()
	if r.Status == store.ReviewPending && !r.Expires.IsZero() && now.After(r.Expires) {
		s.expire(ctx, r)
		return store.Review{}, fmt.Errorf("%w: it expired at %s", ErrDecided, r.Expires.Format(time.RFC3339))
	}
	r, err = s.st.DecideReview(ctx, store.ReviewDecision{ID: id, Reviewer: reviewer.Name, Aliases: s.Names(reviewer),
		Approve: approve, Reason: reason, Time: now})
	if errors.Is(err, store.ErrConflict) {
		cur, _ := s.st.Review(ctx, id)
		return store.Review{}, fmt.Errorf("%w: it is %s", ErrDecided, cur.Status)
	}
	if err != nil {
		return store.Review{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	kind := audit.KindReviewApprove
	if !approve {
		kind = audit.KindReviewDeny
	}
	s.event(ctx, kind, reviewer.Name, "", r, "")
	s.notify.Send(ctx, kind, r, reviewer.Name)
	if r.Status != store.ReviewPending {
		s.mu.Lock()
		if h := s.waiting[id]; h != nil {
			delete(s.waiting, id)
			close(h.decided)
		}
		s.mu.Unlock()
	}
	return r, nil
}

// Grant returns the approved access request that lets id use connection
// now, the one that runs longest, or ErrNotFound.
func (s *Service) Grant(ctx context.Context, id protocol.Identity, connection string) (store.Review, error) {
	rs, err := s.st.Reviews(ctx, store.ReviewFilter{Kind: store.ReviewAccess, Status: store.ReviewApproved,
		Identity: id.Name, Connection: connection, Limit: 1000})
	if err != nil {
		return store.Review{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	now := s.now()
	var best store.Review
	for _, r := range rs {
		if r.Expires.After(now) && r.Expires.After(best.Expires) {
			best = r
		}
	}
	if best.ID == "" {
		return store.Review{}, ErrNotFound
	}
	return best, nil
}

// GrantExpired audits that a session ended because its grant expired.
func (s *Service) GrantExpired(ctx context.Context, sessionID string, grant store.Review) {
	s.event(ctx, audit.KindReviewExpire, grant.Identity, sessionID, grant, "the access grant expired; the session was ended")
}

// HoldRequest is a request to hold in a live session.
type HoldRequest struct {
	protocol.HoldRequest
	Identity   protocol.Identity
	Connection string
}

// Hold records a held statement, or releases a late approval of the same
// binding (see protocol.Holder).
func (s *Service) Hold(ctx context.Context, req HoldRequest) (*protocol.HoldResponse, error) {
	cn, ok := s.cfg.ConnectionByName(req.Connection)
	if !ok {
		return nil, ErrNoAccess
	}
	digest := Digest(req.Identity.Name, cn.Name, req.Request, req.Text, req.Params)
	now := s.now().UTC()
	if r, ok := s.lateApproval(ctx, req, digest, now); ok {
		return &protocol.HoldResponse{ReviewID: r.ID, Reviewers: r.Reviewers, Released: true}, nil
	}
	if err := s.checkPending(ctx, req.Identity.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", protocol.ErrHoldUnavailable, err)
	}
	reviewers := req.Reviewers
	if len(reviewers) == 0 {
		reviewers = cn.Reviewers
	}
	if len(reviewers) == 0 {
		reviewers = s.cfg.Gateway.AdminGroups
	}
	rid, err := newID()
	if err != nil {
		return nil, err
	}
	r := store.Review{
		ID: rid, Kind: store.ReviewStatement, Status: store.ReviewPending, Identity: req.Identity.Name,
		Connection: cn.Name, SessionID: req.SessionID, Request: req.Request, Text: req.Text, Params: req.Params, ParamsShown: req.ParamsShown,
		Digest: digest, Reason: req.Reason, Reviewers: slices.Clone(reviewers), MinApprovals: cn.MinApprovals,
		Created: now, HoldUntil: now.Add(s.cfg.Review.HoldTimeout.Duration), Expires: now.Add(s.cfg.Review.RequestTTL.Duration),
	}
	if err := s.st.CreateReview(ctx, r); err != nil {
		return nil, fmt.Errorf("%w: %v", protocol.ErrHoldUnavailable, err)
	}
	s.mu.Lock()
	s.waiting[rid] = &hold{review: r, decided: make(chan struct{})}
	s.mu.Unlock()
	if err := s.eventSync(ctx, audit.KindReviewHold, req.Identity.Name, req.SessionID, r, ""); err != nil {
		s.forget(rid)
		_ = s.st.CloseReview(context.WithoutCancel(ctx), rid, store.ReviewCancelled, now)
		return nil, fmt.Errorf("%w: %v", protocol.ErrHoldUnavailable, err)
	}
	s.notify.Send(ctx, audit.KindReviewHold, r, "")
	return &protocol.HoldResponse{ReviewID: rid, Reviewers: r.Reviewers, Until: r.HoldUntil}, nil
}

// lateApproval finds and releases an approved statement review of the same
// binding whose hold timed out before it was approved. The approval may be
// used until the review's expiry ([review] request_ttl after the hold),
// not for ever.
func (s *Service) lateApproval(ctx context.Context, req HoldRequest, digest string, now time.Time) (store.Review, bool) {
	rs, err := s.st.Reviews(ctx, store.ReviewFilter{Kind: store.ReviewStatement, Status: store.ReviewApproved, Digest: digest, Limit: 100})
	if err != nil {
		s.log.Error("looking up approved reviews", "error", err)
		return store.Review{}, false
	}
	for _, r := range slices.Backward(rs) { // oldest first
		// The digest covers them, but compare the binding itself too.
		if !r.Released.IsZero() || r.Identity != req.Identity.Name || r.Connection != req.Connection ||
			r.Request != req.Request || r.Text != req.Text || string(r.Params) != string(req.Params) || now.Before(r.HoldUntil) ||
			!r.Expires.IsZero() && !now.Before(r.Expires) {
			continue
		}
		if err := s.st.ReleaseReview(ctx, r.ID, req.SessionID, now); err != nil {
			continue // another session used it first
		}
		// Fail closed: a release that cannot be audited does not run (its
		// approval is used up all the same).
		if err := s.eventSync(ctx, audit.KindReviewRelease, req.Identity.Name, req.SessionID, r,
			"approved after its hold timed out; run once on request"); err != nil {
			s.log.Error("auditing a release; the statement is not run", "review", r.ID, "error", err)
			return store.Review{}, false
		}
		return r, true
	}
	return store.Review{}, false
}

// AwaitHold waits for a held statement's decision (see protocol.Holder).
func (s *Service) AwaitHold(ctx context.Context, sessionID, id string) (*protocol.AwaitHoldResponse, error) {
	s.mu.Lock()
	h := s.waiting[id]
	s.mu.Unlock()
	if h == nil {
		// Decided before we started to wait.
		r, err := s.st.Review(context.WithoutCancel(ctx), id)
		if err != nil || r.SessionID != sessionID {
			return nil, errUnknownHold
		}
		return s.settle(ctx, r, false)
	}
	if h.review.SessionID != sessionID {
		return nil, errUnknownHold
	}
	timer := time.NewTimer(time.Until(h.review.HoldUntil))
	defer timer.Stop()
	select {
	case <-h.decided:
	case <-timer.C:
		s.forget(id)
	case <-ctx.Done():
		s.forget(id)
		return s.cancel(context.WithoutCancel(ctx), h.review)
	}
	r, err := s.st.Review(context.WithoutCancel(ctx), id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return s.settle(ctx, r, true)
}

// settle turns a held review's state into the hold's outcome, releasing an
// approval once.
func (s *Service) settle(ctx context.Context, r store.Review, audited bool) (*protocol.AwaitHoldResponse, error) {
	now := s.now().UTC()
	ctx = context.WithoutCancel(ctx)
	switch r.Status {
	case store.ReviewApproved:
		if err := s.st.ReleaseReview(ctx, r.ID, r.SessionID, now); err != nil {
			return nil, errHoldNotReleased
		}
		if err := s.eventSync(ctx, audit.KindReviewRelease, r.Identity, r.SessionID, r, ""); err != nil {
			return nil, fmt.Errorf("%w: auditing the release: %v", ErrUnavailable, err)
		}
		var by string
		if len(r.Approvals) > 0 {
			by = r.Approvals[len(r.Approvals)-1].Reviewer
		}
		return &protocol.AwaitHoldResponse{Outcome: protocol.HoldApproved, Reviewer: by}, nil
	case store.ReviewDenied:
		return &protocol.AwaitHoldResponse{Outcome: protocol.HoldDenied, Reviewer: r.DeniedBy, Reason: r.DenyReason}, nil
	case store.ReviewPending:
		s.event(ctx, audit.KindReviewTimeout, r.Identity, r.SessionID, r,
			"the hold timed out; an approval from now on lets the same statement run once on request")
		return &protocol.AwaitHoldResponse{Outcome: protocol.HoldTimedOut}, nil
	default: // cancelled, expired
		return &protocol.AwaitHoldResponse{Outcome: protocol.HoldDenied, Reason: "the review " + r.Status}, nil
	}
}

// cancel withdraws the review of a held statement whose client went away,
// so that it never runs: a pending review is cancelled, an approval that
// raced with the client leaving is used up without running.
func (s *Service) cancel(ctx context.Context, r store.Review) (*protocol.AwaitHoldResponse, error) {
	now := s.now().UTC()
	detail := "the client cancelled the statement or went away while it was held; it will never run"
	if err := s.st.CloseReview(ctx, r.ID, store.ReviewCancelled, now); err != nil {
		// Decided meanwhile: burn an approval so that nothing can use it.
		if rerr := s.st.ReleaseReview(ctx, r.ID, "", now); rerr == nil {
			detail = "approved as the client withdrew it; the approval was discarded and the statement never ran"
		}
	} else {
		r.Status = store.ReviewCancelled
	}
	s.event(ctx, audit.KindReviewCancel, r.Identity, r.SessionID, r, detail)
	return nil, fmt.Errorf("review %s: %w", r.ID, context.Canceled)
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.waiting, id)
	s.mu.Unlock()
}

// Holding returns how many held requests wait for a decision in memory.
func (s *Service) Holding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// orphanGrace is how long past its hold a waiter is kept for a handler that
// has yet to call AwaitHold.
const orphanGrace = time.Minute

// Expire closes pending reviews past their expiry, and forgets the live
// holds nobody waits for any more (a handler that held a request and never
// called AwaitHold: a plugin call lost, a connection gone). Run calls it
// periodically.
func (s *Service) Expire(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	for id, h := range s.waiting {
		if now.After(h.review.HoldUntil.Add(orphanGrace)) {
			delete(s.waiting, id)
		}
	}
	s.mu.Unlock()
	rs, err := s.st.Reviews(ctx, store.ReviewFilter{Status: store.ReviewPending, Limit: 1000})
	if err != nil {
		s.log.Error("listing pending reviews", "error", err)
		return
	}
	for _, r := range rs {
		if !r.Expires.IsZero() && now.After(r.Expires) {
			s.expire(ctx, r)
		}
	}
}

func (s *Service) expire(ctx context.Context, r store.Review) {
	if err := s.st.CloseReview(ctx, r.ID, store.ReviewExpired, s.now()); err != nil {
		return
	}
	r.Status = store.ReviewExpired
	s.event(ctx, audit.KindReviewExpire, r.Identity, r.SessionID, r, "nobody decided the review before it expired")
	s.notify.Send(ctx, audit.KindReviewExpire, r, "")
}

// Run expires pending reviews every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Expire(ctx)
		}
	}
}

func reviewData(r store.Review, detail string) audit.ReviewData {
	return audit.ReviewData{
		ReviewID: r.ID, Kind: r.Kind, Status: r.Status, Requester: r.Identity, SessionID: r.SessionID,
		Request: r.Request, Text: r.Text, Params: r.ParamsShown, Digest: r.Digest, Reason: r.Reason,
		Reviewers: r.Reviewers, Approvals: len(r.Approvals), MinApprovals: r.MinApprovals,
		Duration: int64(r.Duration), Expires: r.Expires, Detail: detail,
	}
}

// event audits one step of a review; actor is who acted.
func (s *Service) event(ctx context.Context, kind, actor, sessionID string, r store.Review, detail string) {
	s.count(kind)
	if err := s.audit.Append(context.WithoutCancel(ctx), audit.Record{Kind: kind, SessionID: sessionID, Identity: actor,
		Connection: r.Connection, Data: reviewData(r, detail)}); err != nil {
		s.log.Error("auditing review", "kind", kind, "review", r.ID, "error", err)
	}
}

// syncAuditor is an Auditor that can wait for the record to be committed.
type syncAuditor interface {
	AppendSync(ctx context.Context, r audit.Record) error
}

// eventSync audits a step that must be recorded before it takes effect.
func (s *Service) eventSync(ctx context.Context, kind, actor, sessionID string, r store.Review, detail string) error {
	s.count(kind)
	rec := audit.Record{Kind: kind, SessionID: sessionID, Identity: actor, Connection: r.Connection, Data: reviewData(r, detail)}
	if sa, ok := s.audit.(syncAuditor); ok {
		return sa.AppendSync(ctx, rec)
	}
	return s.audit.Append(ctx, rec)
}

// checkPending refuses a new review of an identity that already has
// MaxPendingPerIdentity pending.
func (s *Service) checkPending(ctx context.Context, identity string) error {
	rs, err := s.st.Reviews(ctx, store.ReviewFilter{Status: store.ReviewPending, Identity: identity, Limit: MaxPendingPerIdentity})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(rs) >= MaxPendingPerIdentity {
		return ErrTooManyPending
	}
	return nil
}

func (s *Service) count(kind string) {
	if s.events != nil {
		s.events.WithLabelValues(kind).Inc()
	}
}

func inAnyGroup(id protocol.Identity, groups []string) bool {
	return identity.InAnyGroup(id, groups)
}
