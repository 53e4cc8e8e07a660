package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/metrics"
	"github.com/gatewayd-access/gatewayd/core/policy"
	"github.com/gatewayd-access/gatewayd/core/recording"
	"github.com/gatewayd-access/gatewayd/core/review"
	"github.com/gatewayd-access/gatewayd/core/secrets"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// host is the core's side of the protocol contract: identity, access,
// secrets, sessions and audit, for every protocol handler.
type host struct {
	cfg     *config.Config
	log     *slog.Logger
	dir     *identity.Directory
	secrets *secrets.Resolver
	store   store.Store
	audit   *audit.Writer
	metrics *metrics.Metrics
	policy  *policy.Engine
	reviews *review.Service

	mu       sync.Mutex
	sessions map[string]*liveSession
}

// liveSession is what the core remembers of an open session.
type liveSession struct {
	id         string
	protocol   string
	identity   protocol.Identity
	connection string
	started    time.Time
	// outcomes caches the request counters by outcome. Only the session's
	// handler calls RecordRequests, one call at a time.
	outcomes map[string]prometheus.Counter
	// policy is the session's policy and masking modules, nil when none
	// applies.
	policy *policy.Session
	// rec is the session's terminal recording, once a handler started it.
	recMu sync.Mutex
	rec   *recording.Writer
	// notAfter is when the session's access ends: the first of its access
	// grant's end (connections with require_approval) and its identity's
	// credential's; zero when neither ends. grantTimer audits the grant's.
	notAfter   time.Time
	grantID    string
	grantUntil time.Time
	grantTimer *time.Timer
	// endReason says why the session ends at notAfter when it is the
	// identity's credential that expires; "" for a grant.
	endReason string
}

func (h *host) Authenticate(ctx context.Context, req protocol.AuthenticateRequest) (*protocol.AuthenticateResponse, error) {
	var id protocol.Identity
	var err error
	data := audit.AuthData{Protocol: req.Protocol, ClientAddr: req.ClientAddr, User: req.User}
	switch {
	case len(req.PublicKey) > 0:
		id, err = h.dir.AuthenticateKey(req.PublicKey)
		data.Method = "publickey"
	case req.User == "":
		id, err = h.dir.AuthenticateToken(req.Password.Reveal())
		data.Method = "token"
	default:
		id, err = h.dir.Authenticate(req.User, req.Password.Reveal())
		data.Method = "token"
	}
	if err != nil {
		h.metrics.AuthFailures.WithLabelValues(req.Protocol).Inc()
		data.Reason = "invalid identity or token"
		if err != identity.ErrUnauthenticated {
			// Why an issued token or certificate was refused (expired,
			// revoked, another CA); never the credential.
			data.Reason = err.Error()
		}
		h.log.Warn("authentication failed", "protocol", req.Protocol, "client", req.ClientAddr, "user", req.User)
		if aerr := h.appendEvent(ctx, audit.Record{Kind: audit.KindAuthFailed, Identity: req.User, Data: data}); aerr != nil {
			h.log.Error("auditing failed authentication", "error", aerr)
		}
		return nil, protocol.ErrUnauthenticated
	}
	if err := h.appendEvent(ctx, audit.Record{Kind: audit.KindAuthOK, Identity: id.Name, Data: data}); err != nil {
		// Fail closed: no session without its audit trail.
		return nil, fmt.Errorf("%w: %v", protocol.ErrUnavailable, err)
	}
	return &protocol.AuthenticateResponse{Identity: id}, nil
}

func (h *host) OpenSession(ctx context.Context, req protocol.OpenSessionRequest) (*protocol.OpenSessionResponse, error) {
	conn, ok := h.cfg.ConnectionByName(req.Connection)
	if !ok || conn.Protocol != req.Protocol || !identity.InAnyGroup(req.Identity, conn.AllowGroups) {
		reason := "identity not in allow_groups"
		if !ok || conn.Protocol != req.Protocol {
			reason = "no such connection"
		}
		h.metrics.AccessDenied.WithLabelValues(req.Protocol).Inc()
		h.log.Warn("access denied", "protocol", req.Protocol, "client", req.ClientAddr, "user", req.Identity.Name, "connection", req.Connection, "reason", reason)
		if err := h.appendEvent(ctx, audit.Record{
			Kind: audit.KindAccessDenied, Identity: req.Identity.Name, Connection: req.Connection,
			Data: audit.AccessData{Protocol: req.Protocol, ClientAddr: req.ClientAddr, Reason: reason},
		}); err != nil {
			h.log.Error("auditing access denial", "error", err)
		}
		return nil, protocol.ErrNoAccess
	}
	var grant store.Review
	if conn.RequireApproval {
		var err error
		if grant, err = h.grant(ctx, req, conn); err != nil {
			return nil, err
		}
	}
	cred, err := h.secrets.Resolve(ctx, conn.Secret)
	if err != nil {
		h.metrics.UpstreamErrors.WithLabelValues(req.Protocol, conn.Name).Inc()
		h.log.Error("resolving connection secret", "connection", conn.Name, "error", err)
		return nil, fmt.Errorf("%w: resolving the connection's credential", protocol.ErrUnavailable)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("%w: session id: %v", protocol.ErrUnavailable, err)
	}
	now := time.Now().UTC()
	ls := &liveSession{id: id.String(), protocol: req.Protocol, identity: req.Identity, connection: conn.Name, started: now,
		outcomes: map[string]prometheus.Counter{}, notAfter: grant.Expires}
	// The session ends with the first of its grant and the credential
	// that signed the identity in (an issued token, a certificate).
	if exp := req.Identity.Expires; !exp.IsZero() && (ls.notAfter.IsZero() || exp.Before(ls.notAfter)) {
		if !exp.After(now) {
			return nil, fmt.Errorf("%w: the sign-in expired at %s", protocol.ErrNoAccess, exp.UTC().Format(time.RFC3339))
		}
		ls.notAfter = exp
		ls.endReason = fmt.Sprintf("your sign-in expired at %s; sign in again with gatewayctl login", exp.UTC().Format(time.RFC3339))
	}
	if err := h.store.CreateSession(ctx, store.Session{
		ID: ls.id, Protocol: req.Protocol, Connection: conn.Name, Identity: req.Identity.Name,
		Email: req.Identity.Email, ClientAddr: req.ClientAddr, Started: now,
	}); err != nil {
		return nil, fmt.Errorf("%w: recording session: %v", protocol.ErrUnavailable, err)
	}
	if err := h.audit.AppendSync(ctx, audit.Record{
		Time: now, Kind: audit.KindSessionStart, SessionID: ls.id, Identity: req.Identity.Name, Connection: conn.Name,
		Data: audit.SessionStartData{
			Protocol: req.Protocol, ClientAddr: req.ClientAddr, Email: req.Identity.Email,
			Groups: req.Identity.Groups, TLS: req.TLS, Target: conn.User, Attributes: req.Attributes,
			GrantID: grant.ID, GrantUntil: grant.Expires,
		},
	}); err != nil {
		_ = h.store.EndSession(context.WithoutCancel(ctx), store.SessionEnd{ID: ls.id, Ended: time.Now().UTC(), Reason: "audit log unavailable"})
		return nil, fmt.Errorf("%w: audit log: %v", protocol.ErrUnavailable, err)
	}
	h.metrics.AuditEvents.Inc()
	ls.policy = h.policy.Open(abi.Session{
		ID: ls.id, Identity: req.Identity.Name, Email: req.Identity.Email, Groups: req.Identity.Groups,
		Connection: conn.Name, Protocol: req.Protocol,
	})
	h.mu.Lock()
	h.sessions[ls.id] = ls
	h.mu.Unlock()
	if grant.ID != "" {
		h.watchGrant(ls, grant.ID, grant.Expires)
	}
	h.metrics.SessionsTotal.WithLabelValues(req.Protocol, conn.Name).Inc()
	h.metrics.SessionsActive.WithLabelValues(req.Protocol).Inc()
	return &protocol.OpenSessionResponse{
		SessionID: ls.id,
		Target: protocol.Target{
			Connection:         conn.Name,
			Address:            conn.Address,
			Database:           conn.Database,
			User:               conn.User,
			Credential:         cred,
			TLS:                protocol.TargetTLS{Mode: conn.TLS, CAFile: conn.TLSCAFile, ServerName: conn.TLSServerName},
			DialTimeout:        conn.ConnectTimeout.Duration,
			HostKeys:           hostKeys(conn),
			AllowForward:       conn.AllowForward,
			AllowRemoteForward: conn.AllowRemoteForward,
		},
		Policy:    ls.policy.HasPolicy(),
		Masking:   ls.policy.Masks(),
		NotAfter:  ls.notAfter,
		EndReason: ls.endReason,
	}, nil
}

func (h *host) RecordRequests(ctx context.Context, reqs []protocol.RequestRecord) error {
	var ls *liveSession
	for i := range reqs {
		r := &reqs[i]
		if ls == nil || ls.id != r.SessionID {
			if ls = h.session(r.SessionID); ls == nil {
				return fmt.Errorf("gateway: recording request of unknown session %q", r.SessionID)
			}
		}
		c, ok := ls.outcomes[r.Outcome]
		if !ok {
			c = h.metrics.Requests.WithLabelValues(ls.protocol, r.Outcome)
			ls.outcomes[r.Outcome] = c
		}
		c.Inc()
		err := h.appendEvent(ctx, audit.Record{
			Time: r.Started.Add(r.Duration), Kind: audit.KindRequest, SessionID: ls.id,
			Identity: ls.identity.Name, Connection: ls.connection,
			Data: audit.RequestData{
				Kind: r.Kind, Text: r.Text, Started: r.Started.UTC(), Duration: int64(r.Duration),
				Rows: r.Rows, Outcome: r.Outcome, Tag: r.Tag, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
				ReviewID: r.ReviewID,
			},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *host) RecordEvent(ctx context.Context, ev protocol.Event) error {
	rec := audit.Record{Kind: audit.KindProtocol, SessionID: ev.SessionID,
		Data: audit.ProtocolData{Event: ev.Kind, ClientAddr: ev.ClientAddr, Detail: ev.Detail}}
	if ev.Kind == "upstream.failed" {
		rec.Kind = audit.KindUpstreamFail
	}
	if ls := h.session(ev.SessionID); ls != nil {
		rec.Identity, rec.Connection = ls.identity.Name, ls.connection
		if rec.Kind == audit.KindUpstreamFail {
			h.metrics.UpstreamErrors.WithLabelValues(ls.protocol, ls.connection).Inc()
		}
	}
	return h.appendEvent(ctx, rec)
}

func (h *host) CloseSession(ctx context.Context, req protocol.CloseSessionRequest) error {
	h.mu.Lock()
	ls := h.sessions[req.SessionID]
	delete(h.sessions, req.SessionID)
	h.mu.Unlock()
	if ls == nil {
		return fmt.Errorf("gateway: closing unknown session %q", req.SessionID)
	}
	ls.policy.Close()
	h.stopGrant(ls)
	h.endRecording(ls)
	now := time.Now().UTC()
	h.metrics.SessionsActive.WithLabelValues(ls.protocol).Dec()
	h.metrics.Bytes.WithLabelValues(ls.protocol, "in").Add(float64(req.BytesIn))
	h.metrics.Bytes.WithLabelValues(ls.protocol, "out").Add(float64(req.BytesOut))
	serr := h.store.EndSession(ctx, store.SessionEnd{
		ID: ls.id, Ended: now, Reason: req.Reason, BytesIn: req.BytesIn, BytesOut: req.BytesOut, Requests: req.RequestCount,
	})
	aerr := h.appendEvent(ctx, audit.Record{
		Time: now, Kind: audit.KindSessionEnd, SessionID: ls.id, Identity: ls.identity.Name, Connection: ls.connection,
		Data: audit.SessionEndData{Reason: req.Reason, BytesIn: req.BytesIn, BytesOut: req.BytesOut,
			Requests: req.RequestCount, Duration: int64(now.Sub(ls.started))},
	})
	return errors.Join(serr, aerr)
}

func (h *host) session(id string) *liveSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id]
}

func (h *host) appendEvent(ctx context.Context, r audit.Record) error {
	if err := h.audit.Append(ctx, r); err != nil {
		h.metrics.AuditUnavailable.Set(1)
		return err
	}
	h.metrics.AuditEvents.Inc()
	return nil
}

var _ protocol.Host = (*host)(nil)

// hostKeys are an ssh connection's pinned host keys.
func hostKeys(c *config.Connection) []string {
	if c.HostKey != "" {
		return []string{c.HostKey}
	}
	if c.KnownHosts != "" {
		// Checked at startup; read again so that an edited file applies.
		keys, _ := config.KnownHostKeys(c.KnownHosts)
		return keys
	}
	return nil
}
