package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"
	"golang.org/x/oauth2"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// maxPending bounds the logins in progress, and maxPendingPerClient those
// from one client address; past them new ones are refused. Login starts
// need no credentials, so these keep a flood from one address from
// blocking everyone's logins.
const (
	maxPending          = 10000
	maxPendingPerClient = 32
)

// Auditor appends audit events; *audit.Writer is one.
type Auditor interface {
	Append(ctx context.Context, r audit.Record) error
}

// Options configure a Service.
type Options struct {
	// Config is the [identity.oidc] table. Required.
	Config config.OIDC
	// ClientSecret is the resolved client secret. Required.
	ClientSecret string
	// HTTPClient reaches the identity provider; nil uses one with a
	// timeout.
	HTTPClient *http.Client
	// Directory authenticates callers of the authenticated routes.
	Directory *identity.Directory
	// Tokens issues and revokes gateway tokens. Required.
	Tokens *identity.Tokens
	// CA signs SSH user certificates; nil issues none.
	CA *identity.UserCA
	// Audit receives login events. Required.
	Audit Auditor
	// Connections are the configured connections, for GET /v1/connections.
	Connections []config.Connection
	// Listeners are the protocol listeners' ports by protocol.
	Listeners map[string]int
	// SSHHostKey is the gateway's SSH host key, handed to clients at
	// login; "" without an SSH listener.
	SSHHostKey string
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Context bounds the service's background work (polling the provider
	// for device logins); nil is context.Background.
	Context context.Context
	// Registerer receives the service's metrics
	// (gatewayd_logins_total{flow,outcome}); nil registers none.
	Registerer prometheus.Registerer
}

// Service runs logins. It is safe for concurrent use.
type Service struct {
	opts Options
	rp   *rp
	log  *slog.Logger
	now  func() time.Time

	// logins counts logins by flow and outcome ("ok", "refused",
	// "unreachable").
	logins *prometheus.CounterVec

	mu         sync.Mutex
	byState    map[string]*pending // browser logins waiting for the callback
	byCode     map[string]*pending // browser logins waiting for finish
	byDeviceID map[string]*pending // device logins
}

// pending is one login in progress.
type pending struct {
	flow      string // "browser" or "device"
	state     string
	nonce     string
	verifier  string // PKCE verifier towards the provider
	redirect  string // the client's loopback redirect URI
	challenge string // base64url(sha256) of the client's verifier
	sshKey    string
	client    string // client address, for audit
	started   time.Time
	expires   time.Time

	// Set when the provider's part is over.
	done   bool
	result *Result
	err    error
}

// New returns a Service. It does not contact the provider: discovery
// happens at the first login, so that the gateway starts (and issued tokens
// keep working) while the provider is down.
func New(opts Options) (*Service, error) {
	if opts.Tokens == nil || opts.Audit == nil {
		return nil, errors.New("login: Tokens and Audit are required")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: idpTimeout}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	s := &Service{
		opts: opts, log: opts.Logger, now: opts.Now,
		rp:         &rp{cfg: opts.Config, secret: opts.ClientSecret, client: opts.HTTPClient, now: opts.Now},
		byState:    map[string]*pending{},
		byCode:     map[string]*pending{},
		byDeviceID: map[string]*pending{},
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_logins_total", Help: "Logins through the identity provider, by flow and outcome.",
		}, []string{"flow", "outcome"}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.logins); err != nil {
			return nil, fmt.Errorf("login: registering metrics: %w", err)
		}
	}
	return s, nil
}

// randomString returns n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("login: reading random bytes: %v", err)) // crypto/rand does not fail
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Challenge is the code challenge of a verifier: base64url(sha256(v)).
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkStart validates what a client sends to start a login.
func checkStart(challenge, sshKey string) error {
	if raw, err := base64.RawURLEncoding.DecodeString(challenge); err != nil || len(raw) != sha256.Size {
		return refuse("code_challenge must be base64url(sha256(verifier))")
	}
	if sshKey != "" {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshKey))
		if err != nil {
			return refuse("ssh_public_key is not an SSH public key")
		}
		if _, ok := k.(*ssh.Certificate); ok {
			return refuse("ssh_public_key is a certificate; give the public key")
		}
		if err := identity.CheckUserKey(k); err != nil {
			return refuse("ssh_public_key: %s", strings.TrimPrefix(err.Error(), "identity: "))
		}
	}
	return nil
}

// checkLoopbackRedirect accepts only http://127.0.0.1:PORT/..., [::1] or
// localhost: the one-time code must not leave the user's machine.
func checkLoopbackRedirect(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Port() == "" {
		return refuse("redirect_uri must be http://127.0.0.1:PORT/... (a loopback listener of gatewayctl)")
	}
	switch h := u.Hostname(); h {
	case "127.0.0.1", "::1", "localhost":
		return nil
	default:
		return refuse("redirect_uri must be on a loopback address, have host %q", h)
	}
}

// Start begins a browser login and returns the provider's URL to open.
func (s *Service) Start(ctx context.Context, req StartRequest, clientAddr string) (*StartResponse, error) {
	if err := checkLoopbackRedirect(req.RedirectURI); err != nil {
		return nil, err
	}
	if err := checkStart(req.CodeChallenge, req.SSHPublicKey); err != nil {
		return nil, err
	}
	d, err := s.rp.discover(ctx, true)
	if err != nil {
		s.failed(ctx, "browser", clientAddr, err)
		return nil, err
	}
	now := s.now()
	p := &pending{
		flow: "browser", state: randomString(24), nonce: randomString(24), verifier: oauth2.GenerateVerifier(),
		redirect: req.RedirectURI, challenge: req.CodeChallenge, sshKey: req.SSHPublicKey, client: clientAddr,
		started: now, expires: now.Add(s.opts.Config.LoginTimeout.Duration),
	}
	if err := s.add(clientAddr, func() { s.byState[p.state] = p }); err != nil {
		return nil, err
	}
	u := d.oauth.AuthCodeURL(p.state, oauth2.S256ChallengeOption(p.verifier), oidc.Nonce(p.nonce))
	return &StartResponse{AuthURL: u, Expires: p.expires}, nil
}

// room checks that another login of client may start: fewer than
// maxPending in all and maxPendingPerClient from its address.
func (s *Service) room(client string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roomLocked(client)
}

func (s *Service) roomLocked(client string) error {
	s.sweep()
	if len(s.byState)+len(s.byCode)+len(s.byDeviceID) >= maxPending {
		return refuse("too many logins in progress; try again in a minute")
	}
	host := clientHost(client)
	n := 0
	for _, m := range []map[string]*pending{s.byState, s.byCode, s.byDeviceID} {
		for _, p := range m {
			if clientHost(p.client) == host {
				n++
			}
		}
	}
	if n >= maxPendingPerClient {
		return refuse("too many logins in progress from %s; finish or wait for one", host)
	}
	return nil
}

// add registers a pending login of client if there is room.
func (s *Service) add(client string, register func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.roomLocked(client); err != nil {
		return err
	}
	register()
	return nil
}

// clientHost is the host part of a client address.
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// sweep forgets expired logins; s.mu is held.
func (s *Service) sweep() {
	now := s.now()
	for _, m := range []map[string]*pending{s.byState, s.byCode, s.byDeviceID} {
		for k, p := range m {
			if now.After(p.expires) {
				delete(m, k)
			}
		}
	}
}

// Callback handles the provider's redirect: it takes the login of state
// (once), exchanges the code with the PKCE verifier, verifies the ID token
// and issues the gateway's credentials. It returns where to send the
// browser: the client's loopback URI with a one-time code, or with the
// reason of a refusal. An unknown state has nowhere to go: the error is
// shown to the browser.
func (s *Service) Callback(ctx context.Context, q url.Values) (string, error) {
	state := q.Get("state")
	s.mu.Lock()
	p := s.byState[state]
	delete(s.byState, state) // a state is used once, whatever happens next
	s.mu.Unlock()
	if p == nil || state == "" {
		err := refuse("unknown, expired or already used login state (a replayed callback?)")
		s.failed(ctx, "browser", "", err)
		return "", err
	}
	if s.now().After(p.expires) {
		return s.fail(ctx, p, refuse("the login took longer than %v", s.opts.Config.LoginTimeout.Duration))
	}
	if e := q.Get("error"); e != "" {
		desc := q.Get("error_description")
		return s.fail(ctx, p, refuse("the identity provider answered %s%s", clip(e, 64), clipSuffix(desc)))
	}
	code := q.Get("code")
	if code == "" {
		return s.fail(ctx, p, refuse("the identity provider sent no authorization code"))
	}
	d, err := s.rp.discover(ctx, false)
	if err != nil {
		return s.fail(ctx, p, err)
	}
	xctx, cancel := context.WithTimeout(s.rp.ctx(ctx), idpTimeout)
	defer cancel()
	tok, err := d.oauth.Exchange(xctx, code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		return s.fail(ctx, p, describeExchange(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return s.fail(ctx, p, refuse("the identity provider's answer holds no ID token"))
	}
	user, err := s.rp.verify(ctx, d, raw, p.nonce, true, tok.AccessToken)
	if err != nil {
		return s.fail(ctx, p, err)
	}
	res, err := s.issue(ctx, p, user)
	if err != nil {
		return s.fail(ctx, p, err)
	}
	code1 := randomString(24)
	s.mu.Lock()
	p.done, p.result = true, res
	s.byCode[code1] = p
	s.mu.Unlock()
	return withQuery(p.redirect, "code", code1), nil
}

// fail audits a refused login and returns the client's redirect with the
// reason.
func (s *Service) fail(ctx context.Context, p *pending, err error) (string, error) {
	s.failed(ctx, p.flow, p.client, err)
	return withQuery(p.redirect, "error", reason(err)), nil
}

func (s *Service) failed(ctx context.Context, flow, client string, err error) {
	outcome := "refused"
	if errors.Is(err, ErrUnreachable) {
		outcome = "unreachable"
	}
	s.logins.WithLabelValues(flow, outcome).Inc()
	data := audit.LoginData{Flow: flow, Client: client, Issuer: s.opts.Config.Issuer, Reason: reason(err)}
	var r *Refusal
	if errors.As(err, &r) {
		data.Subject, data.Email = r.Subject, r.Email
	}
	s.log.Warn("login refused", "flow", flow, "client", client, "email", data.Email, "reason", data.Reason)
	if aerr := s.opts.Audit.Append(ctx, audit.Record{Kind: audit.KindLoginFailed, Identity: data.Email, Data: data}); aerr != nil {
		s.log.Error("auditing a refused login", "error", aerr)
	}
}

// reason is what an error says to a user and the audit log.
func reason(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return err.Error()
}

// describeExchange words a failed code exchange without echoing anything
// the provider sent back verbatim beyond its error code.
func describeExchange(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorCode
		if msg == "" {
			msg = fmt.Sprintf("HTTP %d", re.Response.StatusCode)
		}
		return refuse("the identity provider refused the authorization code (%s%s): it may have been used already", clip(msg, 64), clipSuffix(re.ErrorDescription))
	}
	return fmt.Errorf("%w: exchanging the authorization code: %v", ErrUnreachable, err)
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func clipSuffix(desc string) string {
	if desc == "" {
		return ""
	}
	return ": " + clip(desc, 200)
}

func withQuery(base, k, v string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// issue makes the gateway token (and certificate) for a verified user and
// audits the login.
func (s *Service) issue(ctx context.Context, p *pending, u User) (*Result, error) {
	id := protocol.Identity{Name: u.Email, Email: u.Email, Groups: u.Groups}
	token, claims, err := s.opts.Tokens.Issue(u.Subject, id, s.opts.Config.TokenTTL.Duration)
	if err != nil {
		return nil, err
	}
	res := &Result{Token: token, Expires: claims.Expires().UTC(), Name: claims.Name, Email: claims.Email,
		Groups: claims.Groups, Listeners: s.opts.Listeners, SSHHostKey: s.opts.SSHHostKey}
	var cert *ssh.Certificate
	if p.sshKey != "" && s.opts.CA != nil {
		if cert, err = s.opts.CA.Sign(p.sshKey, claims); err != nil {
			return nil, err
		}
		res.SSHCertificate = string(ssh.MarshalAuthorizedKey(cert))
	}
	recs := []audit.Record{
		{Kind: audit.KindLogin, Identity: claims.Name, Data: audit.LoginData{Flow: p.flow, Subject: u.Subject, Email: u.Email,
			Groups: u.Groups, Issuer: s.opts.Config.Issuer, Client: p.client, TokenID: claims.ID, Duration: int64(s.now().Sub(p.started))}},
		{Kind: audit.KindTokenIssue, Identity: claims.Name, Data: audit.TokenData{TokenID: claims.ID, Subject: u.Subject,
			Email: u.Email, Groups: u.Groups, Expires: res.Expires.Format(time.RFC3339)}},
	}
	if cert != nil {
		recs = append(recs, audit.Record{Kind: audit.KindCertIssue, Identity: claims.Name, Data: audit.CertData{
			KeyID: cert.KeyId, Serial: cert.Serial, Principals: cert.ValidPrincipals,
			Fingerprint: ssh.FingerprintSHA256(cert.Key), ValidBefore: time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339)}})
	}
	for _, r := range recs {
		if err := s.opts.Audit.Append(ctx, r); err != nil {
			// No credentials without their audit trail.
			_ = s.opts.Tokens.Revoke(claims)
			return nil, fmt.Errorf("login: auditing the login: %w", err)
		}
	}
	s.logins.WithLabelValues(p.flow, "ok").Inc()
	s.log.Info("login", "flow", p.flow, "user", claims.Name, "groups", claims.Groups, "token_id", claims.ID, "certificate", cert != nil)
	return res, nil
}

// Finish redeems the one-time code of a browser login for its result,
// once, for the holder of the verifier. A wrong verifier burns the code
// and is audited: whoever sent it saw the code.
func (s *Service) Finish(ctx context.Context, req FinishRequest, clientAddr string) (*Result, error) {
	s.mu.Lock()
	p := s.byCode[req.Code]
	if p == nil || req.Code == "" || s.now().After(p.expires) {
		s.mu.Unlock()
		return nil, refuse("unknown, expired or already used login code")
	}
	delete(s.byCode, req.Code)
	res := p.result
	s.mu.Unlock()
	if subtle.ConstantTimeCompare([]byte(Challenge(req.CodeVerifier)), []byte(p.challenge)) != 1 {
		return nil, s.wrongVerifier(ctx, p.flow, res, clientAddr)
	}
	return res, nil
}

// wrongVerifier audits a login redeemed with the wrong verifier and
// returns the refusal. A complete login was audited as successful when the
// provider's part ended, so the event names whose it was.
func (s *Service) wrongVerifier(ctx context.Context, flow string, res *Result, clientAddr string) error {
	err := &Refusal{Reason: "the code verifier does not match the login (it cannot be redeemed any more)"}
	if res != nil {
		err.Email = res.Email
	}
	s.failed(ctx, flow, clientAddr, err)
	return err
}

// StartDevice begins a device-authorization login at the provider; the
// gateway polls the provider in the background until the user completes
// it, the provider refuses or the login times out.
func (s *Service) StartDevice(ctx context.Context, req DeviceRequest, clientAddr string) (*DeviceResponse, error) {
	if err := checkStart(req.CodeChallenge, req.SSHPublicKey); err != nil {
		return nil, err
	}
	d, err := s.rp.discover(ctx, true)
	if err != nil {
		s.failed(ctx, "device", clientAddr, err)
		return nil, err
	}
	if d.oauth.Endpoint.DeviceAuthURL == "" {
		return nil, refuse("the identity provider does not offer the device authorization grant")
	}
	if err := s.room(clientAddr); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(s.rp.ctx(ctx), idpTimeout)
	defer cancel()
	da, err := d.oauth.DeviceAuth(dctx)
	if err != nil {
		err = fmt.Errorf("%w: starting device authorization: %v", ErrUnreachable, err)
		s.failed(ctx, "device", clientAddr, err)
		return nil, err
	}
	now := s.now()
	p := &pending{flow: "device", challenge: req.CodeChallenge, sshKey: req.SSHPublicKey, client: clientAddr,
		started: now, expires: now.Add(s.opts.Config.LoginTimeout.Duration)}
	if !da.Expiry.IsZero() && da.Expiry.Before(p.expires) {
		p.expires = da.Expiry
	}
	id := randomString(24)
	if err := s.add(clientAddr, func() { s.byDeviceID[id] = p }); err != nil {
		return nil, err
	}
	go s.pollDevice(d, da, p)
	interval := int(da.Interval)
	if interval <= 0 {
		interval = 5
	}
	return &DeviceResponse{LoginID: id, VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		UserCode: da.UserCode, Interval: interval, Expires: p.expires}, nil
}

// pollDevice waits for the provider's token of a device login.
func (s *Service) pollDevice(d *discovered, da *oauth2.DeviceAuthResponse, p *pending) {
	ctx, cancel := context.WithDeadline(s.rp.ctx(s.opts.Context), p.expires)
	defer cancel()
	var res *Result
	tok, err := d.oauth.DeviceAccessToken(ctx, da)
	if err != nil {
		err = describeDevice(err)
	} else if raw, _ := tok.Extra("id_token").(string); raw == "" {
		err = refuse("the identity provider's answer holds no ID token")
	} else {
		// No authorization request, so no nonce: the token came straight
		// from the provider's token endpoint over an authenticated channel.
		var u User
		if u, err = s.rp.verify(ctx, d, raw, "", false, tok.AccessToken); err == nil {
			res, err = s.issue(ctx, p, u)
		}
	}
	if err != nil {
		s.failed(ctx, "device", p.client, err)
	}
	s.mu.Lock()
	p.done, p.result, p.err = true, res, err
	s.mu.Unlock()
}

func describeDevice(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return refuse("the identity provider ended the device login (%s%s)", clip(re.ErrorCode, 64), clipSuffix(re.ErrorDescription))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return refuse("the device login was not completed in time")
	}
	return fmt.Errorf("%w: polling for the device login: %v", ErrUnreachable, err)
}

// Poll returns the result of a device login once it is complete (nil, nil
// while pending), to the holder of the verifier, once. A wrong verifier
// ends the login and is audited.
func (s *Service) Poll(ctx context.Context, req PollRequest, clientAddr string) (*Result, error) {
	s.mu.Lock()
	p := s.byDeviceID[req.LoginID]
	if p == nil || req.LoginID == "" {
		s.mu.Unlock()
		return nil, refuse("unknown, expired or already finished device login")
	}
	if subtle.ConstantTimeCompare([]byte(Challenge(req.CodeVerifier)), []byte(p.challenge)) != 1 {
		delete(s.byDeviceID, req.LoginID)
		flow, res := p.flow, p.result
		s.mu.Unlock()
		return nil, s.wrongVerifier(ctx, flow, res, clientAddr)
	}
	defer s.mu.Unlock()
	if !p.done {
		if s.now().After(p.expires) {
			delete(s.byDeviceID, req.LoginID)
			return nil, refuse("the device login was not completed in time")
		}
		return nil, nil
	}
	delete(s.byDeviceID, req.LoginID)
	return p.result, p.err
}

// Logout revokes the caller's issued token. A token that does not verify
// is an identity.ErrUnauthenticated; a revocation that could not be
// recorded is another error (the token is refused all the same).
func (s *Service) Logout(ctx context.Context, token, clientAddr string) error {
	c, err := s.opts.Tokens.Verify(token)
	if err != nil {
		return fmt.Errorf("%w: %w", identity.ErrUnauthenticated, err)
	}
	rerr := s.opts.Tokens.Revoke(c)
	if rerr != nil {
		s.log.Error("recording a revocation", "user", c.Name, "token_id", c.ID, "error", rerr)
	}
	exp := c.Expires().UTC().Format(time.RFC3339)
	for _, r := range []audit.Record{
		{Kind: audit.KindLogout, Identity: c.Name, Data: audit.LoginData{Subject: c.Subject, Email: c.Email, Client: clientAddr, TokenID: c.ID}},
		{Kind: audit.KindTokenRevoke, Identity: c.Name, Data: audit.TokenData{TokenID: c.ID, Subject: c.Subject, Email: c.Email, Expires: exp}},
	} {
		if err := s.opts.Audit.Append(ctx, r); err != nil {
			s.log.Error("auditing a logout", "error", err)
		}
	}
	s.log.Info("logout", "user", c.Name, "token_id", c.ID)
	return rerr
}
