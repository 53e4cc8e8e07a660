package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatewayd-access/gatewayd/core/config"
)

// idpTimeout bounds each call to the identity provider.
const idpTimeout = 15 * time.Second

// ErrUnreachable wraps failures to reach the identity provider.
var ErrUnreachable = errors.New("the identity provider cannot be reached")

// Refusal is a login the gateway refused: Reason says why, in words safe
// to show the user and to audit (it never holds a token or a code).
// Subject and Email name who was refused, when that is known (a verified
// ID token of someone the gateway does not let in).
type Refusal struct {
	Reason         string
	Subject, Email string
}

func (r *Refusal) Error() string { return "login refused: " + r.Reason }

func refuse(format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

// User is who the identity provider says signed in.
type User struct {
	Subject string
	Email   string
	Groups  []string
}

// rp is the gateway as an OpenID Connect relying party of one provider.
type rp struct {
	cfg    config.OIDC
	secret string
	client *http.Client
	now    func() time.Time

	mu   sync.Mutex
	disc *discovered // nil until discovery succeeds
	// last is the time of the last discovery attempt and lastErr its
	// error: a fresh discovery is attempted at most once per
	// minRediscover, so that unauthenticated login starts cannot make the
	// gateway hammer the provider.
	last    time.Time
	lastErr error
}

// minRediscover is the least time between two reads of the discovery
// document.
const minRediscover = time.Second

// discovered is what the provider's discovery document gave.
type discovered struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	keys     *keySet
	provider *oidc.Provider
	userinfo string // the userinfo endpoint, "" when there is none
}

// discover reads the provider's discovery document. With fresh false a
// document read before is reused; a login's start reads it afresh, so that
// an unreachable provider fails the login at once with a clear error
// rather than in the user's browser. The key set (and its cache) is kept
// while the provider names the same jwks_uri.
func (r *rp) discover(ctx context.Context, fresh bool) (*discovered, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.disc != nil && !fresh {
		return r.disc, nil
	}
	if !r.last.IsZero() && r.now().Sub(r.last) < minRediscover {
		if r.lastErr != nil {
			return nil, r.lastErr
		}
		return r.disc, nil
	}
	r.last = r.now()
	d, err := r.rediscover(ctx)
	r.lastErr = err
	if err != nil {
		return nil, err
	}
	r.disc = d
	return d, nil
}

// rediscover reads the discovery document; r.mu is held.
func (r *rp) rediscover(ctx context.Context) (*discovered, error) {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, r.client), idpTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, r.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %v", ErrUnreachable, r.cfg.Issuer, err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		return nil, fmt.Errorf("%w (%s): its discovery document names no jwks_uri", ErrUnreachable, r.cfg.Issuer)
	}
	algs := make([]jose.SignatureAlgorithm, len(r.cfg.SigningAlgs))
	for i, a := range r.cfg.SigningAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	ks := &keySet{url: meta.JWKS, client: r.client, algs: algs, interval: r.cfg.JWKSRefreshInterval.Duration, now: r.now}
	if r.disc != nil && r.disc.keys.url == meta.JWKS {
		ks = r.disc.keys
	}
	return &discovered{
		oauth: oauth2.Config{
			ClientID: r.cfg.ClientID, ClientSecret: r.secret, Endpoint: p.Endpoint(),
			RedirectURL: r.cfg.RedirectURL, Scopes: r.cfg.Scopes,
		},
		verifier: oidc.NewVerifier(r.cfg.Issuer, ks, &oidc.Config{
			ClientID:             r.cfg.ClientID,
			SupportedSigningAlgs: r.cfg.SigningAlgs,
			// Checked below with the configured leeway.
			SkipExpiryCheck: true,
		}),
		keys:     ks,
		provider: p,
		userinfo: p.UserInfoEndpoint(),
	}, nil
}

// ctx returns a context whose oauth2 and go-oidc calls use r's client.
func (r *rp) ctx(ctx context.Context) context.Context {
	return context.WithValue(oidc.ClientContext(ctx, r.client), oauth2.HTTPClient, r.client)
}

// verify checks a raw ID token: signature with an allowed algorithm and a
// published key, issuer, audience (and azp when there are several),
// expiry, issued-at and not-before within the leeway, and the nonce when
// requireNonce (the device flow has none). It then takes email and groups
// from the token, or from the provider's userinfo endpoint (with
// accessToken, for the same subject) for what the token leaves out, and
// checks the email's domain. It returns who signed in.
func (r *rp) verify(ctx context.Context, d *discovered, raw, wantNonce string, requireNonce bool, accessToken string) (User, error) {
	tok, err := d.verifier.Verify(r.ctx(ctx), raw)
	if err != nil {
		return User{}, refuse("the ID token does not verify: %s", strings.TrimPrefix(err.Error(), "oidc: "))
	}
	now, leeway := r.now(), r.cfg.ClockLeeway.Duration
	if tok.Expiry.IsZero() || !now.Before(tok.Expiry.Add(leeway)) {
		return User{}, refuse("the ID token expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
	}
	if !tok.IssuedAt.IsZero() && tok.IssuedAt.After(now.Add(leeway)) {
		return User{}, refuse("the ID token was issued in the future (%s)", tok.IssuedAt.UTC().Format(time.RFC3339))
	}
	var claims struct {
		NotBefore *int64 `json:"nbf"`
		AZP       string `json:"azp"`
	}
	if err := tok.Claims(&claims); err != nil {
		return User{}, refuse("the ID token's claims do not decode")
	}
	if claims.NotBefore != nil && time.Unix(*claims.NotBefore, 0).After(now.Add(leeway)) {
		return User{}, refuse("the ID token is not valid yet")
	}
	if len(tok.Audience) > 1 && claims.AZP != r.cfg.ClientID {
		return User{}, refuse("the ID token has several audiences and was not issued to this gateway (azp %q)", claims.AZP)
	}
	switch {
	case requireNonce && tok.Nonce == "":
		return User{}, refuse("the ID token carries no nonce")
	case requireNonce && tok.Nonce != wantNonce:
		return User{}, refuse("the ID token's nonce does not match this login (a replayed token?)")
	}
	if tok.AccessTokenHash != "" && accessToken != "" {
		if err := tok.VerifyAccessToken(accessToken); err != nil {
			return User{}, refuse("the access token does not match the ID token's at_hash")
		}
	}
	var all map[string]any
	if err := tok.Claims(&all); err != nil {
		return User{}, refuse("the ID token's claims do not decode")
	}
	_, hasGroups := all[r.cfg.GroupsClaim]
	if email, _ := all["email"].(string); (email == "" || !hasGroups) && accessToken != "" && d.userinfo != "" {
		info, err := r.userinfo(ctx, d, accessToken, tok.Subject)
		if err != nil {
			return User{}, err
		}
		for _, k := range []string{"email", "email_verified", r.cfg.GroupsClaim} {
			if _, ok := all[k]; !ok && info[k] != nil {
				all[k] = info[k]
			}
		}
	}
	email, _ := all["email"].(string)
	if email == "" {
		return User{}, refuse("neither the ID token nor userinfo carries an email (request the email scope)")
	}
	who := func(err error) error {
		var r *Refusal
		if errors.As(err, &r) {
			r.Subject, r.Email = tok.Subject, strings.ToLower(email)
		}
		return err
	}
	// A boolean in OIDC Core; some providers (Amazon Cognito's userinfo)
	// send the string "true" or "false". Anything else is refused rather
	// than taken as not saying.
	switch v := all["email_verified"].(type) {
	case nil:
	case bool:
		if !v {
			return User{}, who(refuse("the email %s is not verified at the identity provider", email))
		}
	case string:
		if !strings.EqualFold(v, "true") {
			return User{}, who(refuse("the email %s is not verified at the identity provider", email))
		}
	default:
		return User{}, who(refuse("the email_verified claim is neither true nor false"))
	}
	email = strings.ToLower(email)
	if doms := r.cfg.AllowedDomains; len(doms) > 0 {
		_, dom, _ := strings.Cut(email, "@")
		if !slices.Contains(doms, dom) {
			return User{}, who(refuse("%s is not in an allowed domain (%s)", email, strings.Join(doms, ", ")))
		}
	}
	groups, err := r.groups(all[r.cfg.GroupsClaim])
	if err != nil {
		return User{}, who(err)
	}
	return User{Subject: tok.Subject, Email: email, Groups: groups}, nil
}

// userinfo asks the provider's userinfo endpoint about the holder of
// accessToken, which must be subject.
func (r *rp) userinfo(ctx context.Context, d *discovered, accessToken, subject string) (map[string]any, error) {
	uctx, cancel := context.WithTimeout(r.ctx(ctx), idpTimeout)
	defer cancel()
	ui, err := d.provider.UserInfo(uctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: "Bearer"}))
	if err != nil {
		return nil, fmt.Errorf("%w: asking the userinfo endpoint: %v", ErrUnreachable, err)
	}
	if ui.Subject != subject {
		return nil, refuse("the userinfo endpoint answered for another subject than the ID token's")
	}
	var info map[string]any
	if err := ui.Claims(&info); err != nil {
		return nil, refuse("the userinfo answer does not decode")
	}
	return info, nil
}

// groups reads the groups claim: absent, a string or an array of strings.
func (r *rp) groups(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return []string{}, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, refuse("the %q claim holds something other than strings", r.cfg.GroupsClaim)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, refuse("the %q claim is neither a string nor an array of strings", r.cfg.GroupsClaim)
	}
}
