package review

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Headers of a webhook delivery. The signature is the hex HMAC-SHA256,
// keyed with the webhook's secret, of the timestamp, a '.', and the body;
// receivers recompute it and refuse old timestamps.
const (
	HeaderSignature = "X-Gatewayd-Signature" // "sha256=" + hex
	HeaderTimestamp = "X-Gatewayd-Timestamp" // unix seconds
	HeaderEvent     = "X-Gatewayd-Event"     // the audit kind, e.g. "review.hold"
)

// Sign returns the signature header value of a body sent at ts.
func Sign(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Webhook is one endpoint notifications are posted to.
type Webhook struct {
	URL    string
	Format string // "json" or "slack"
	// Secret signs the body; empty sends it unsigned.
	Secret      secret.Value
	Timeout     time.Duration
	MaxAttempts int
}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	Webhooks  []Webhook
	QueueSize int
	// Audit records dropped and undeliverable notifications.
	Audit  Auditor
	Log    *slog.Logger
	Client *http.Client
	// Backoff is the wait after the first failed attempt; it doubles up to
	// 30s. Default 1s.
	Backoff time.Duration
}

// Notifier posts notifications to webhooks from a bounded queue, with
// retries, off the data path: Send never blocks.
type Notifier struct {
	hooks   []Webhook
	queue   chan delivery
	audit   Auditor
	log     *slog.Logger
	client  *http.Client
	backoff time.Duration
	wg      sync.WaitGroup
}

type delivery struct {
	review string
	hook   int
	kind   string
	body   []byte
	queued time.Time
}

// NewNotifier returns a notifier; Start runs its senders.
func NewNotifier(opts NotifierOptions) *Notifier {
	n := &Notifier{hooks: opts.Webhooks, queue: make(chan delivery, max(1, opts.QueueSize)), audit: opts.Audit,
		log: opts.Log, client: opts.Client, backoff: opts.Backoff}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.client == nil {
		n.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if n.backoff <= 0 {
		n.backoff = time.Second
	}
	return n
}

// Start runs the senders until ctx ends; Wait waits for them.
func (n *Notifier) Start(ctx context.Context) {
	if n == nil || len(n.hooks) == 0 {
		return
	}
	for range 2 {
		n.wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-n.queue:
					n.deliver(ctx, d)
				}
			}
		})
	}
}

// Wait waits for the senders to stop after their context ended.
func (n *Notifier) Wait() {
	if n != nil {
		n.wg.Wait()
	}
}

// Message is the generic JSON body of a notification.
type Message struct {
	Event  string        `json:"event"` // the audit kind, e.g. "review.hold"
	Time   time.Time     `json:"time"`
	Actor  string        `json:"actor,omitempty"` // the reviewer who decided
	Review MessageReview `json:"review"`
}

// MessageReview is the review in a Message.
type MessageReview struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	Status       string    `json:"status"`
	Identity     string    `json:"identity"`
	Connection   string    `json:"connection"`
	SessionID    string    `json:"session_id,omitempty"`
	Request      string    `json:"request,omitempty"`
	Text         string    `json:"text,omitempty"`
	Params       []string  `json:"params,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Duration     string    `json:"duration,omitempty"`
	Reviewers    []string  `json:"reviewers"`
	Approvals    int       `json:"approvals"`
	MinApprovals int       `json:"min_approvals"`
	HoldUntil    time.Time `json:"hold_until,omitzero"`
	Expires      time.Time `json:"expires,omitzero"`
	DenyReason   string    `json:"deny_reason,omitempty"`
}

// Send queues a notification of a review event for every webhook. A full
// queue drops it, audited.
func (n *Notifier) Send(ctx context.Context, kind string, r store.Review, actor string) {
	if n == nil || len(n.hooks) == 0 {
		return
	}
	m := Message{Event: kind, Time: time.Now().UTC(), Actor: actor, Review: MessageReview{
		ID: r.ID, Kind: r.Kind, Status: r.Status, Identity: r.Identity, Connection: r.Connection, SessionID: r.SessionID,
		Request: r.Request, Text: r.Text, Params: r.ParamsShown, Reason: r.Reason, Reviewers: r.Reviewers,
		Approvals: len(r.Approvals), MinApprovals: r.MinApprovals, HoldUntil: r.HoldUntil, Expires: r.Expires,
		DenyReason: r.DenyReason,
	}}
	if r.Duration > 0 {
		m.Review.Duration = r.Duration.String()
	}
	for i, h := range n.hooks {
		body, err := encode(h.Format, m)
		if err != nil {
			n.log.Error("encoding notification", "error", err)
			continue
		}
		select {
		case n.queue <- delivery{review: r.ID, hook: i, kind: kind, body: body, queued: time.Now()}:
		default:
			n.log.Warn("notification dropped: queue full", "webhook", n.name(i), "event", kind, "review", r.ID)
			n.record(ctx, r.ID, i, kind, "dropped: the notification queue is full")
		}
	}
}

func encode(format string, m Message) ([]byte, error) {
	if format != "slack" {
		return json.Marshal(m)
	}
	return json.Marshal(map[string]string{"text": slackText(m)})
}

// slackEscaper escapes what Slack reads as control sequences (<!channel>,
// <URL|label>) in text that requesters or reviewers wrote, and turns
// backticks into a look-alike so that a statement's text cannot close the
// code block it is shown in.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "\u02cb")

// slackText renders a notification for a Slack-compatible incoming webhook.
func slackText(m Message) string {
	r := m.Review
	m.Actor = slackEscaper.Replace(m.Actor)
	r.Identity, r.Connection, r.Text = slackEscaper.Replace(r.Identity), slackEscaper.Replace(r.Connection), slackEscaper.Replace(r.Text)
	r.Reason, r.DenyReason = slackEscaper.Replace(r.Reason), slackEscaper.Replace(r.DenyReason)
	r.Params = slices.Clone(r.Params)
	for i := range r.Params {
		r.Params[i] = slackEscaper.Replace(r.Params[i])
	}
	var b strings.Builder
	switch m.Event {
	case audit.KindReviewRequest:
		fmt.Fprintf(&b, "*%s* requests access to *%s* for %s: %s", r.Identity, r.Connection, r.Duration, r.Reason)
	case audit.KindReviewHold:
		fmt.Fprintf(&b, "*%s* waits for approval of a statement on *%s*:\n```%s```", r.Identity, r.Connection, r.Text)
		if len(r.Params) > 0 {
			fmt.Fprintf(&b, "\nparameters: `%s`", strings.Join(r.Params, "`, `"))
		}
	case audit.KindReviewApprove:
		fmt.Fprintf(&b, "*%s* approved review %s of *%s* on *%s* (%d of %d)", m.Actor, r.ID, r.Identity, r.Connection, r.Approvals, r.MinApprovals)
	case audit.KindReviewDeny:
		fmt.Fprintf(&b, "*%s* denied review %s of *%s* on *%s*: %s", m.Actor, r.ID, r.Identity, r.Connection, r.DenyReason)
	default:
		fmt.Fprintf(&b, "review %s of *%s* on *%s*: %s", r.ID, r.Identity, r.Connection, r.Status)
	}
	if m.Event == audit.KindReviewRequest || m.Event == audit.KindReviewHold {
		fmt.Fprintf(&b, "\nreviewers: %s. `gatewayctl review approve %s` or `gatewayctl review deny %s --reason ...`",
			strings.Join(r.Reviewers, ", "), r.ID, r.ID)
	}
	return b.String()
}

// deliver posts one notification, retrying with backoff.
func (n *Notifier) deliver(ctx context.Context, d delivery) {
	h := n.hooks[d.hook]
	wait := n.backoff
	var last string
	for attempt := 1; attempt <= max(1, h.MaxAttempts); attempt++ {
		retry, err := n.post(ctx, h, d)
		if err == nil {
			return
		}
		last = err.Error()
		n.log.Warn("webhook delivery failed", "webhook", n.name(d.hook), "event", d.kind, "attempt", attempt, "error", last)
		if !retry || attempt == max(1, h.MaxAttempts) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
	n.record(ctx, d.review, d.hook, d.kind, "undeliverable: "+last)
}

// post makes one attempt; retry says whether another may succeed.
func (n *Notifier) post(ctx context.Context, h Webhook, d delivery) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, h.URL, bytes.NewReader(d.body))
	if err != nil {
		return false, errors.New("invalid webhook request")
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gatewayd")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderEvent, d.kind)
	if !h.Secret.IsZero() {
		req.Header.Set(HeaderSignature, Sign([]byte(h.Secret.Reveal()), ts, d.body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// The URL may carry a credential (Slack's do): keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("posting: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
}

// name identifies a webhook in logs and events without its URL, whose
// path or query may be a credential.
func (n *Notifier) name(i int) string {
	host := "?"
	if u, err := url.Parse(n.hooks[i].URL); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("%d (%s)", i+1, host)
}

func (n *Notifier) record(ctx context.Context, reviewID string, hook int, kind, detail string) {
	if n.audit == nil {
		return
	}
	if err := n.audit.Append(context.WithoutCancel(ctx), audit.Record{Kind: audit.KindReviewNotify,
		Data: audit.ReviewData{ReviewID: reviewID, Detail: fmt.Sprintf("webhook %s, %s: %s", n.name(hook), kind, detail)}}); err != nil {
		n.log.Error("auditing notification", "error", err)
	}
}
