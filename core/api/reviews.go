package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gatewayd-access/gatewayd/core/review"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// Routes of access requests and reviews:
//
//	POST /v1/requests               AccessRequest -> Review (201)          token
//	GET  /v1/reviews                ReviewList (?status=S&kind=K&limit=N)  token
//	GET  /v1/reviews/{id}           Review                                  token
//	POST /v1/reviews/{id}/approve   Decision -> Review                      token (a reviewer)
//	POST /v1/reviews/{id}/deny      Decision -> Review                      token (a reviewer)
//
// A caller sees the reviews they asked for and those they may decide
// (member of one of its reviewer groups); admins see all. Someone else's
// review is answered 404 like a missing one. A requester never decides
// their own review (403), nor does anyone outside its reviewer groups.

// Reviews is the review service the API serves; *review.Service is one.
type Reviews interface {
	RequestAccess(ctx context.Context, id protocol.Identity, connection string, d time.Duration, reason string) (store.Review, error)
	Review(ctx context.Context, id string) (store.Review, error)
	Reviews(ctx context.Context, f store.ReviewFilter) ([]store.Review, error)
	Decide(ctx context.Context, reviewer protocol.Identity, id string, approve bool, reason string) (store.Review, error)
	// CanDecide reports whether reviewer may decide a review: nil, or why
	// not.
	CanDecide(reviewer protocol.Identity, r store.Review) error
}

// AccessRequest is the body of POST /v1/requests.
type AccessRequest struct {
	Connection string `json:"connection"`
	Duration   string `json:"duration"` // a Go duration, "1h"
	Reason     string `json:"reason"`
}

// Decision is the body of the approve and deny routes.
type Decision struct {
	Reason string `json:"reason,omitempty"`
}

// Review is an access request or a held statement.
type Review struct {
	ID         string   `json:"id"`
	Kind       string   `json:"kind"`   // "access" or "statement"
	Status     string   `json:"status"` // "pending", "approved", "denied", "cancelled", "expired"
	Identity   string   `json:"identity"`
	Connection string   `json:"connection"`
	SessionID  string   `json:"session_id,omitempty"`
	Request    string   `json:"request,omitempty"`
	Text       string   `json:"text,omitempty"`
	Params     []string `json:"params,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	// Duration is the grant an access request asks for, in nanoseconds.
	Duration     int64      `json:"duration_ns,omitempty"`
	Reviewers    []string   `json:"reviewers"`
	MinApprovals int        `json:"min_approvals"`
	Approvals    []Approval `json:"approvals"`
	Created      time.Time  `json:"created"`
	HoldUntil    time.Time  `json:"hold_until,omitzero"`
	// Expires is when a pending review expires, or an approved access
	// request's grant ends.
	Expires    time.Time `json:"expires,omitzero"`
	Decided    time.Time `json:"decided,omitzero"`
	DeniedBy   string    `json:"denied_by,omitempty"`
	DenyReason string    `json:"deny_reason,omitempty"`
	Released   time.Time `json:"released,omitzero"`
	// CanDecide reports whether the caller may approve or deny it.
	CanDecide bool `json:"can_decide"`
}

// Approval is one reviewer's approval.
type Approval struct {
	Reviewer string    `json:"reviewer"`
	Time     time.Time `json:"time"`
}

// ReviewList is the body of GET /v1/reviews.
type ReviewList struct {
	Reviews []Review `json:"reviews"`
}

// maxBody bounds a request body.
const maxBody = 64 << 10

// errNoReview answers a missing review and one the caller may not see.
const errNoReview = "no such review"

func (h *handler) reviewRoutes(mux *http.ServeMux, route func(string, http.HandlerFunc)) {
	if h.reviews == nil {
		return
	}
	post := func(path string, hf http.HandlerFunc) {
		mux.Handle("POST "+path, hf)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		})
	}
	post("/v1/requests", h.auth(h.requestAccess))
	route("/v1/reviews", h.auth(h.listReviews))
	route("/v1/reviews/{id}", h.auth(h.getReview))
	post("/v1/reviews/{id}/approve", h.auth(h.decide(true)))
	post("/v1/reviews/{id}/deny", h.auth(h.decide(false)))
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (h *handler) requestAccess(w http.ResponseWriter, r *http.Request, c *caller) {
	var req AccessRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid duration: want a number and a unit, such as \"1h\" or \"30m\"")
		return
	}
	rv, err := h.reviews.RequestAccess(r.Context(), c.id, req.Connection, d, req.Reason)
	if err != nil {
		h.reviewError(w, c, err)
		return
	}
	writeJSON(w, http.StatusCreated, h.toReview(rv, c))
}

// visible reports whether a caller may see a review.
func (h *handler) visible(rv store.Review, c *caller) bool {
	return c.admin || rv.Identity == c.id.Name || h.reviews.CanDecide(c.id, rv) == nil
}

func (h *handler) listReviews(w http.ResponseWriter, r *http.Request, c *caller) {
	q := r.URL.Query()
	limit := DefaultSessionLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxSessionLimit {
			writeError(w, http.StatusBadRequest, "limit must be from 1 to "+strconv.Itoa(MaxSessionLimit))
			return
		}
		limit = n
	}
	f := store.ReviewFilter{Status: q.Get("status"), Kind: q.Get("kind"), Limit: MaxSessionLimit}
	rs, err := h.reviews.Reviews(r.Context(), f)
	if err != nil {
		h.reviewError(w, c, err)
		return
	}
	list := ReviewList{Reviews: []Review{}}
	for _, rv := range rs {
		if h.visible(rv, c) && len(list.Reviews) < limit {
			list.Reviews = append(list.Reviews, h.toReview(rv, c))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (h *handler) getReview(w http.ResponseWriter, r *http.Request, c *caller) {
	rv, err := h.reviews.Review(r.Context(), r.PathValue("id"))
	if err == nil && !h.visible(rv, c) {
		err = review.ErrNotFound
	}
	if err != nil {
		h.reviewError(w, c, err)
		return
	}
	writeJSON(w, http.StatusOK, h.toReview(rv, c))
}

func (h *handler) decide(approve bool) func(http.ResponseWriter, *http.Request, *caller) {
	return func(w http.ResponseWriter, r *http.Request, c *caller) {
		var d Decision
		if err := decodeBody(r, &d); err != nil {
			writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
			return
		}
		id := r.PathValue("id")
		if cur, err := h.reviews.Review(r.Context(), id); err == nil && !h.visible(cur, c) {
			h.reviewError(w, c, review.ErrNotFound)
			return
		}
		rv, err := h.reviews.Decide(r.Context(), c.id, id, approve, d.Reason)
		if err != nil {
			h.reviewError(w, c, err)
			return
		}
		writeJSON(w, http.StatusOK, h.toReview(rv, c))
	}
}

func (h *handler) reviewError(w http.ResponseWriter, c *caller, err error) {
	switch {
	case errors.Is(err, review.ErrNotFound):
		writeError(w, http.StatusNotFound, errNoReview)
	case errors.Is(err, review.ErrNoAccess):
		writeError(w, http.StatusNotFound, "no such connection or you may not use it")
	case errors.Is(err, review.ErrSelfReview), errors.Is(err, review.ErrNotReviewer):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, review.ErrDecided):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, review.ErrInvalid), errors.Is(err, review.ErrNoApproval):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		c.log.Error("api: reviews", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the review store is unavailable")
	}
}

func (h *handler) toReview(rv store.Review, c *caller) Review {
	out := Review{
		ID: rv.ID, Kind: rv.Kind, Status: rv.Status, Identity: rv.Identity, Connection: rv.Connection,
		SessionID: rv.SessionID, Request: rv.Request, Text: rv.Text, Params: rv.ParamsShown, Reason: rv.Reason,
		Duration: int64(rv.Duration), Reviewers: rv.Reviewers, MinApprovals: rv.MinApprovals, Approvals: []Approval{},
		Created: rv.Created, HoldUntil: rv.HoldUntil, Expires: rv.Expires, Decided: rv.Decided,
		DeniedBy: rv.DeniedBy, DenyReason: rv.DenyReason, Released: rv.Released,
		CanDecide: rv.Status == store.ReviewPending && h.reviews.CanDecide(c.id, rv) == nil &&
			!slices.ContainsFunc(rv.Approvals, func(a store.Approval) bool { return a.Reviewer == c.id.Name }),
	}
	if out.Reviewers == nil {
		out.Reviewers = []string{}
	}
	for _, a := range rv.Approvals {
		out.Approvals = append(out.Approvals, Approval{Reviewer: a.Reviewer, Time: a.Time})
	}
	return out
}
