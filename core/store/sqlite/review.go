package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

const reviewColumns = `id, kind, status, identity, connection, session_id, request, text, params, params_shown, digest,
	reason, duration, reviewers, min_approvals, created, hold_until, expires, approvals, decided,
	denied_by, deny_reason, released, released_session`

// approvalJSON is how an approval is stored in the approvals column.
type approvalJSON struct {
	Reviewer string `json:"reviewer"`
	Time     int64  `json:"time"` // unix nanoseconds UTC
}

func encodeApprovals(as []store.Approval) (string, error) {
	out := make([]approvalJSON, 0, len(as))
	for _, a := range as {
		out = append(out, approvalJSON{Reviewer: a.Reviewer, Time: a.Time.UnixNano()})
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func decodeApprovals(s string) ([]store.Approval, error) {
	var in []approvalJSON
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, err
	}
	var out []store.Approval
	for _, a := range in {
		out = append(out, store.Approval{Reviewer: a.Reviewer, Time: time.Unix(0, a.Time).UTC()})
	}
	return out, nil
}

// CreateReview records a new pending review.
func (s *Store) CreateReview(ctx context.Context, r store.Review) error {
	if r.ID == "" {
		return errors.New("creating review: empty id")
	}
	groups, err := json.Marshal(nonNil(r.Reviewers))
	if err != nil {
		return fmt.Errorf("creating review %s: %w", r.ID, err)
	}
	approvals, err := encodeApprovals(r.Approvals)
	if err != nil {
		return fmt.Errorf("creating review %s: %w", r.ID, err)
	}
	shown, err := json.Marshal(r.ParamsShown)
	if err != nil {
		return fmt.Errorf("creating review %s: %w", r.ID, err)
	}
	_, err = s.write.ExecContext(ctx, `INSERT INTO reviews (`+reviewColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Kind, r.Status, r.Identity, r.Connection, r.SessionID, r.Request, r.Text, r.Params, string(shown), r.Digest,
		r.Reason, int64(r.Duration), string(groups), r.MinApprovals, nanos(r.Created), nanos(r.HoldUntil),
		nanos(r.Expires), approvals, nanos(r.Decided), r.DeniedBy, r.DenyReason, nanos(r.Released), r.ReleasedSession)
	if err != nil {
		return fmt.Errorf("creating review %s: %w", r.ID, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func scanReview(sc scanner) (store.Review, error) {
	var (
		r                                              store.Review
		duration                                       int64
		groups, approvals, shown                       string
		created, holdUntil, expires, decided, released sql.NullInt64
	)
	err := sc.Scan(&r.ID, &r.Kind, &r.Status, &r.Identity, &r.Connection, &r.SessionID, &r.Request, &r.Text,
		&r.Params, &shown, &r.Digest, &r.Reason, &duration, &groups, &r.MinApprovals, &created, &holdUntil, &expires,
		&approvals, &decided, &r.DeniedBy, &r.DenyReason, &released, &r.ReleasedSession)
	if err != nil {
		return r, err
	}
	r.Duration = time.Duration(duration)
	r.Created, r.HoldUntil, r.Expires = fromNanos(created), fromNanos(holdUntil), fromNanos(expires)
	r.Decided, r.Released = fromNanos(decided), fromNanos(released)
	if err := json.Unmarshal([]byte(shown), &r.ParamsShown); err != nil {
		return r, fmt.Errorf("decoding parameters: %w", err)
	}
	if err := json.Unmarshal([]byte(groups), &r.Reviewers); err != nil {
		return r, fmt.Errorf("decoding reviewers: %w", err)
	}
	if r.Approvals, err = decodeApprovals(approvals); err != nil {
		return r, fmt.Errorf("decoding approvals: %w", err)
	}
	return r, nil
}

// Review returns one review, or an error wrapping store.ErrNotFound.
func (s *Store) Review(ctx context.Context, id string) (store.Review, error) {
	return s.review(ctx, s.read, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *Store) review(ctx context.Context, q queryer, id string) (store.Review, error) {
	r, err := scanReview(q.QueryRowContext(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Review{}, fmt.Errorf("reading review %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Review{}, fmt.Errorf("reading review %s: %w", id, err)
	}
	return r, nil
}

// Reviews lists reviews, newest first.
func (s *Store) Reviews(ctx context.Context, f store.ReviewFilter) ([]store.Review, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	q := `SELECT ` + reviewColumns + ` FROM reviews WHERE 1=1`
	var args []any
	for _, c := range []struct{ col, v string }{
		{"status", f.Status}, {"kind", f.Kind}, {"identity", f.Identity},
		{"connection", f.Connection}, {"digest", f.Digest},
	} {
		if c.v != "" {
			q += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing reviews: %w", err)
	}
	defer rows.Close()
	var out []store.Review
	for rows.Next() {
		r, err := scanReview(rows)
		if err != nil {
			return nil, fmt.Errorf("listing reviews: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing reviews: %w", err)
	}
	return out, nil
}

// DecideReview records one reviewer's decision on a pending review.
func (s *Store) DecideReview(ctx context.Context, d store.ReviewDecision) (_ store.Review, err error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return store.Review{}, fmt.Errorf("deciding review %s: %w", d.ID, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	r, err := s.review(ctx, tx, d.ID)
	if err != nil {
		return store.Review{}, err
	}
	if r.Status != store.ReviewPending {
		return store.Review{}, fmt.Errorf("deciding review %s (%s): %w", d.ID, r.Status, store.ErrConflict)
	}
	if d.Approve {
		same := func(a store.Approval) bool {
			return a.Reviewer == d.Reviewer || slices.ContainsFunc(d.Aliases, func(n string) bool { return strings.EqualFold(n, a.Reviewer) })
		}
		if !slices.ContainsFunc(r.Approvals, same) {
			r.Approvals = append(r.Approvals, store.Approval{Reviewer: d.Reviewer, Time: d.Time.UTC()})
		}
		if len(r.Approvals) >= max(1, r.MinApprovals) {
			r.Status, r.Decided = store.ReviewApproved, d.Time.UTC()
			if r.Kind == store.ReviewAccess {
				r.Expires = r.Decided.Add(r.Duration)
			}
		}
	} else {
		r.Status, r.Decided, r.DeniedBy, r.DenyReason = store.ReviewDenied, d.Time.UTC(), d.Reviewer, d.Reason
	}
	approvals, err := encodeApprovals(r.Approvals)
	if err != nil {
		return store.Review{}, fmt.Errorf("deciding review %s: %w", d.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE reviews SET status = ?, approvals = ?, decided = ?, expires = ?,
		denied_by = ?, deny_reason = ? WHERE id = ?`,
		r.Status, approvals, nanos(r.Decided), nanos(r.Expires), r.DeniedBy, r.DenyReason, r.ID); err != nil {
		return store.Review{}, fmt.Errorf("deciding review %s: %w", d.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Review{}, fmt.Errorf("deciding review %s: committing: %w", d.ID, err)
	}
	return r, nil
}

// ReleaseReview marks an approved statement review as executed, once.
func (s *Store) ReleaseReview(ctx context.Context, id, sessionID string, at time.Time) error {
	res, err := s.write.ExecContext(ctx, `UPDATE reviews SET released = ?, released_session = ?
		WHERE id = ? AND kind = ? AND status = ? AND released IS NULL`,
		nanos(at.UTC()), sessionID, id, store.ReviewStatement, store.ReviewApproved)
	return oneRow(res, err, "releasing review "+id)
}

// CloseReview moves a pending review to cancelled or expired.
func (s *Store) CloseReview(ctx context.Context, id, status string, at time.Time) error {
	if status != store.ReviewCancelled && status != store.ReviewExpired {
		return fmt.Errorf("closing review %s: invalid status %q", id, status)
	}
	res, err := s.write.ExecContext(ctx, `UPDATE reviews SET status = ?, decided = ? WHERE id = ? AND status = ?`,
		status, nanos(at.UTC()), id, store.ReviewPending)
	return oneRow(res, err, "closing review "+id)
}

// oneRow turns an UPDATE that changed no row into ErrConflict (or
// ErrNotFound).
func oneRow(res sql.Result, err error, action string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", action, store.ErrConflict)
	}
	return nil
}

var _ store.ReviewStore = (*Store)(nil)
