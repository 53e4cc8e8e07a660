package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults of the approval settings.
const (
	DefaultHoldTimeout      = 5 * time.Minute
	DefaultRequestTTL       = 24 * time.Hour
	DefaultMaxGrant         = 8 * time.Hour
	DefaultWebhookQueueSize = 1000
	DefaultWebhookAttempts  = 5
	DefaultWebhookTimeout   = 5 * time.Second
	DefaultMinApprovals     = 1
)

// ConnectionApproval are a connection's approval settings.
type ConnectionApproval struct {
	// RequireApproval lets sessions start only under an approved access
	// request (gatewayctl request). Default false.
	RequireApproval bool `toml:"require_approval"`
	// Reviewers are the groups whose members approve access requests of
	// this connection, and held statements whose policy names no
	// reviewers. Required with require_approval. Default: the gateway's
	// admin_groups for held statements.
	Reviewers []string `toml:"reviewers"`
	// MinApprovals is how many distinct reviewers must approve. Default 1.
	MinApprovals int `toml:"min_approvals"`
}

// Review is the [review] table: access requests, held statements and
// their notifications.
type Review struct {
	// HoldTimeout is how long a held statement waits for a decision
	// before the client gets an error. Default 5m.
	HoldTimeout Duration `toml:"hold_timeout"`
	// RequestTTL is how long a review stays pending before it expires.
	// Default 24h.
	RequestTTL Duration `toml:"request_ttl"`
	// MaxGrant bounds the duration an access request may ask for.
	// Default 8h.
	MaxGrant Duration `toml:"max_grant"`
	// WebhookQueueSize bounds notifications waiting to be sent; when it is
	// full a notification is dropped (and audited), never waited for.
	// Default 1000.
	WebhookQueueSize int `toml:"webhook_queue_size"`
	// Webhook are the endpoints every review is announced to.
	Webhook []Webhook `toml:"webhook"`
}

// Webhook is one [[review.webhook]] endpoint.
type Webhook struct {
	// URL receives a POST per notification: http or https. Required,
	// unless URLSecret is set instead.
	URL string `toml:"url"`
	// URLSecret references the URL instead, for URLs that are credentials
	// themselves (Slack's incoming webhooks), e.g. "env:SLACK_WEBHOOK_URL".
	URLSecret string `toml:"url_secret"`
	// Format is "json" (gatewayd's own body) or "slack" (an incoming
	// webhook's {"text": ...}). Default "json".
	Format string `toml:"format"`
	// Secret references the HMAC-SHA256 key the body is signed with
	// (header X-Gatewayd-Signature: sha256=HEX). Optional.
	Secret string `toml:"secret"`
	// Timeout bounds each attempt. Default 5s.
	Timeout Duration `toml:"timeout"`
	// MaxAttempts is how often a notification is tried, with exponential
	// backoff between attempts. Default 5.
	MaxAttempts int `toml:"max_attempts"`
}

// WebhookURL reports whether s is a URL a webhook can be posted to.
func WebhookURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// webhookFormats are the known webhook body formats.
var webhookFormats = []string{"json", "slack"}

// review fills in and checks [review] and the connections' approval
// settings.
func (d *decoder) review(c *Config, o *options) {
	r := scope{path: "review"}
	d.duration(r, "hold_timeout", &c.Review.HoldTimeout, DefaultHoldTimeout)
	d.duration(r, "request_ttl", &c.Review.RequestTTL, DefaultRequestTTL)
	d.duration(r, "max_grant", &c.Review.MaxGrant, DefaultMaxGrant)
	d.positive(r, "webhook_queue_size", &c.Review.WebhookQueueSize, DefaultWebhookQueueSize)
	for i := range c.Review.Webhook {
		w := &c.Review.Webhook[i]
		s := element("review.webhook", i, "")
		switch {
		case d.given(s, "url_secret") && d.given(s, "url"):
			d.invalid(s, "url_secret", "give url or url_secret, not both")
		case d.given(s, "url_secret"):
			if msg := checkReference(w.URLSecret, o.schemes); msg != "" {
				d.invalid(s, "url_secret", "%s", msg)
			}
		case d.required(s, "url", w.URL):
			if !WebhookURL(w.URL) {
				d.invalid(s, "url", "want an http or https URL")
			}
		}
		switch {
		case d.absent(s, "format"):
			w.Format = "json"
		case d.given(s, "format") && !slices.Contains(webhookFormats, w.Format):
			d.invalid(s, "format", "want one of %s, have %q", strings.Join(webhookFormats, ", "), w.Format)
		}
		if d.given(s, "secret") {
			if msg := checkReference(w.Secret, o.schemes); msg != "" {
				d.invalid(s, "secret", "%s", msg)
			}
		}
		d.duration(s, "timeout", &w.Timeout, DefaultWebhookTimeout)
		d.positive(s, "max_attempts", &w.MaxAttempts, DefaultWebhookAttempts)
	}
	for i := range c.Connection {
		cn := &c.Connection[i]
		s := element("connection", i, cn.Name)
		d.positive(s, "min_approvals", &cn.MinApprovals, DefaultMinApprovals)
		if cn.RequireApproval && len(cn.Reviewers) == 0 {
			d.invalid(s, "reviewers", "required with require_approval = true: the groups that approve access requests")
		}
		for _, g := range cn.Reviewers {
			if strings.TrimSpace(g) == "" {
				d.invalid(s, "reviewers", "must not hold an empty group")
			}
		}
	}
}
