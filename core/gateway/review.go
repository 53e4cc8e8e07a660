package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/review"
	"github.com/gatewayd-access/gatewayd/core/secrets"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// reviewInterval is how often pending reviews past their expiry are closed.
const reviewInterval = 30 * time.Second

// newNotifier resolves the webhooks' signing secrets and returns the
// notifier of [review] webhooks.
func newNotifier(ctx context.Context, cfg *config.Config, res *secrets.Resolver, aw *audit.Writer, g *Gateway) (*review.Notifier, error) {
	var hooks []review.Webhook
	for i, w := range cfg.Review.Webhook {
		h := review.Webhook{URL: w.URL, Format: w.Format, Timeout: w.Timeout.Duration, MaxAttempts: w.MaxAttempts}
		if w.URLSecret != "" {
			v, err := res.Resolve(ctx, w.URLSecret)
			if err != nil {
				return nil, fmt.Errorf("resolving the url_secret of review.webhook[%d]: %w", i+1, err)
			}
			// The error names the key only: the URL is the secret.
			if h.URL = strings.TrimSpace(v.Reveal()); !config.WebhookURL(h.URL) {
				return nil, fmt.Errorf("review.webhook[%d]: url_secret does not hold an http or https URL", i+1)
			}
		}
		if w.Secret != "" {
			v, err := res.Resolve(ctx, w.Secret)
			if err != nil {
				return nil, fmt.Errorf("resolving the secret of review.webhook[%d]: %w", i+1, err)
			}
			h.Secret = v
		}
		hooks = append(hooks, h)
	}
	return review.NewNotifier(review.NotifierOptions{
		Webhooks:  hooks,
		QueueSize: cfg.Review.WebhookQueueSize,
		Audit:     aw,
		Log:       g.log.With("component", "notify"),
	}), nil
}

// grant checks the access grant of a session on a connection that requires
// approval, and arranges for the session to end when it expires.
func (h *host) grant(ctx context.Context, req protocol.OpenSessionRequest, conn *config.Connection) (store.Review, error) {
	g, err := h.reviews.Grant(ctx, req.Identity, conn.Name)
	if errors.Is(err, review.ErrNotFound) {
		h.metrics.AccessDenied.WithLabelValues(req.Protocol).Inc()
		h.log.Warn("access denied", "protocol", req.Protocol, "client", req.ClientAddr, "user", req.Identity.Name,
			"connection", conn.Name, "reason", "no approved access request")
		if err := h.appendEvent(ctx, audit.Record{
			Kind: audit.KindAccessDenied, Identity: req.Identity.Name, Connection: conn.Name,
			Data: audit.AccessData{Protocol: req.Protocol, ClientAddr: req.ClientAddr,
				Reason: "the connection requires approval and the identity has no running access grant"},
		}); err != nil {
			h.log.Error("auditing access denial", "error", err)
		}
		return store.Review{}, protocol.ErrApprovalRequired
	}
	if err != nil {
		return store.Review{}, fmt.Errorf("%w: %v", protocol.ErrUnavailable, err)
	}
	return g, nil
}

// watchGrant audits the end of a session's grant when it comes; the
// handler ends the session (OpenSessionResponse.NotAfter) and Admit refuses
// its requests from then on.
func (h *host) watchGrant(ls *liveSession, grantID string, until time.Time) {
	ls.grantID, ls.grantUntil = grantID, until
	ls.grantTimer = time.AfterFunc(time.Until(until), func() { h.grantExpired(ls) })
}

// stopGrant stops watching a session's grant as it closes; a grant that
// expired while its timer had yet to fire is audited now.
func (h *host) stopGrant(ls *liveSession) {
	if ls.grantTimer != nil && ls.grantTimer.Stop() && !time.Now().Before(ls.grantUntil) {
		h.grantExpired(ls)
	}
}

func (h *host) grantExpired(ls *liveSession) {
	g, err := h.reviews.Review(context.Background(), ls.grantID)
	if err != nil {
		h.log.Error("reading expired grant", "review", ls.grantID, "error", err)
		return
	}
	h.log.Info("access grant expired; ending session", "session", ls.id, "review", ls.grantID)
	h.reviews.GrantExpired(context.Background(), ls.id, g)
}

// expired reports whether a session's access has ended: its grant, or the
// credential its identity signed in with.
func (ls *liveSession) expired() bool {
	return !ls.notAfter.IsZero() && !time.Now().Before(ls.notAfter)
}

// Hold implements protocol.Holder.
func (h *host) Hold(ctx context.Context, req protocol.HoldRequest) (*protocol.HoldResponse, error) {
	ls := h.session(req.SessionID)
	if ls == nil {
		return nil, fmt.Errorf("gateway: holding a request of unknown session %q", req.SessionID)
	}
	return h.reviews.Hold(ctx, review.HoldRequest{HoldRequest: req, Identity: ls.identity, Connection: ls.connection})
}

// AwaitHold implements protocol.Holder.
func (h *host) AwaitHold(ctx context.Context, req protocol.AwaitHoldRequest) (*protocol.AwaitHoldResponse, error) {
	return h.reviews.AwaitHold(ctx, req.SessionID, req.ReviewID)
}

var (
	_ protocol.Holder = (*host)(nil)
	_ api.Reviews     = (*review.Service)(nil)
)
