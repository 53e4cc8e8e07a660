package config

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// OIDC is the [identity.oidc] table: the gateway as a confidential OpenID
// Connect client of the company identity provider. See docs/identity.md.
type OIDC struct {
	// Issuer is the identity provider's issuer URL, exactly as its ID
	// tokens carry it. https, or http on a loopback host. Required.
	Issuer string `toml:"issuer"`
	// ClientID is the gateway's client id at the provider. Required.
	ClientID string `toml:"client_id"`
	// ClientSecret references the client secret ("env:OIDC_CLIENT_SECRET",
	// "file:..."). Required.
	ClientSecret string `toml:"client_secret"`
	// RedirectURL is where the provider sends the browser back: the
	// gateway's API URL followed by /v1/login/callback, registered at the
	// provider. https, or http on a loopback host. Required.
	RedirectURL string `toml:"redirect_url"`
	// Scopes requested; "openid" is always added. Default ["openid",
	// "email", "profile", "groups"].
	Scopes []string `toml:"scopes"`
	// GroupsClaim names the ID token claim holding the user's groups (a
	// string or an array of strings). Default "groups".
	GroupsClaim string `toml:"groups_claim"`
	// AllowedDomains, when set, refuses users whose verified email is not
	// in one of these domains. Default: any domain.
	AllowedDomains []string `toml:"allowed_domains"`
	// SigningAlgs are the ID token signature algorithms accepted. Default
	// ["RS256", "ES256"]; none and the HMAC algorithms are never accepted.
	SigningAlgs []string `toml:"signing_algs"`
	// ClockLeeway is the clock difference tolerated when checking an ID
	// token's times. Default 30s, at most 5m.
	ClockLeeway Duration `toml:"clock_leeway"`
	// JWKSRefreshInterval is the least time between two fetches of the
	// provider's keys caused by an ID token signed with an unknown key id.
	// Default 1m.
	JWKSRefreshInterval Duration `toml:"jwks_refresh_interval"`
	// LoginTimeout bounds a login from start to finish. Default 10m.
	LoginTimeout Duration `toml:"login_timeout"`
	// TokenTTL is the life of the gateway tokens and SSH certificates
	// issued at login. Default 8h, at most 7 days.
	TokenTTL Duration `toml:"token_ttl"`
}

// Defaults and bounds of [identity.oidc].
const (
	DefaultOIDCGroupsClaim     = "groups"
	DefaultOIDCClockLeeway     = 30 * time.Second
	MaxOIDCClockLeeway         = 5 * time.Minute
	DefaultJWKSRefreshInterval = time.Minute
	DefaultLoginTimeout        = 10 * time.Minute
	DefaultTokenTTL            = 8 * time.Hour
	MaxTokenTTL                = 7 * 24 * time.Hour
)

// DefaultOIDCScopes is the default of identity.oidc.scopes.
func DefaultOIDCScopes() []string { return []string{"openid", "email", "profile", "groups"} }

// DefaultSigningAlgs is the default of identity.oidc.signing_algs.
func DefaultSigningAlgs() []string { return []string{"RS256", "ES256"} }

// signingAlgs are the asymmetric JWS algorithms signing_algs may name.
var signingAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

func (d *decoder) oidc(c *Config, o *options) {
	oc := c.Identity.OIDC
	if oc == nil {
		return
	}
	s := scope{path: "identity.oidc"}
	if d.required(s, "issuer", oc.Issuer) {
		if msg := checkSecureURL(oc.Issuer); msg != "" {
			d.invalid(s, "issuer", "%s", msg)
		}
	}
	d.required(s, "client_id", oc.ClientID)
	if d.required(s, "client_secret", oc.ClientSecret) {
		if msg := checkReference(oc.ClientSecret, o.schemes); msg != "" {
			d.invalid(s, "client_secret", "%s", msg)
		}
	}
	if d.required(s, "redirect_url", oc.RedirectURL) {
		if msg := checkSecureURL(oc.RedirectURL); msg != "" {
			d.invalid(s, "redirect_url", "%s", msg)
		} else if u, _ := url.Parse(oc.RedirectURL); !strings.HasSuffix(u.Path, "/v1/login/callback") {
			d.invalid(s, "redirect_url", "must end with /v1/login/callback (the gateway API's callback), have path %q", u.Path)
		}
	}
	switch {
	case d.absent(s, "scopes"):
		oc.Scopes = DefaultOIDCScopes()
	case d.given(s, "scopes") && !slices.Contains(oc.Scopes, "openid"):
		oc.Scopes = append([]string{"openid"}, oc.Scopes...)
	}
	switch {
	case d.absent(s, "groups_claim"):
		oc.GroupsClaim = DefaultOIDCGroupsClaim
	case d.given(s, "groups_claim") && strings.TrimSpace(oc.GroupsClaim) == "":
		d.invalid(s, "groups_claim", "must not be empty")
	}
	for i, dom := range oc.AllowedDomains {
		dom = strings.ToLower(strings.TrimSpace(dom))
		if dom == "" || strings.ContainsAny(dom, "@/ ") {
			d.invalid(s, "allowed_domains", "entry %d is not a domain such as \"example.com\"", i+1)
		}
		oc.AllowedDomains[i] = dom
	}
	if oc.AllowedDomains == nil {
		oc.AllowedDomains = []string{}
	}
	switch {
	case d.absent(s, "signing_algs"):
		oc.SigningAlgs = DefaultSigningAlgs()
	case d.given(s, "signing_algs"):
		if len(oc.SigningAlgs) == 0 {
			d.invalid(s, "signing_algs", "must name at least one algorithm")
		}
		for _, a := range oc.SigningAlgs {
			if !slices.Contains(signingAlgs, a) {
				d.invalid(s, "signing_algs", "%q is not accepted (want some of %s; none and HMAC algorithms never are)", a, strings.Join(signingAlgs, ", "))
			}
		}
	}
	d.duration(s, "clock_leeway", &oc.ClockLeeway, DefaultOIDCClockLeeway)
	if d.given(s, "clock_leeway") && oc.ClockLeeway.Duration > MaxOIDCClockLeeway {
		d.invalid(s, "clock_leeway", "must be at most %v, have %v", MaxOIDCClockLeeway, oc.ClockLeeway.Duration)
	}
	d.duration(s, "jwks_refresh_interval", &oc.JWKSRefreshInterval, DefaultJWKSRefreshInterval)
	d.duration(s, "login_timeout", &oc.LoginTimeout, DefaultLoginTimeout)
	d.duration(s, "token_ttl", &oc.TokenTTL, DefaultTokenTTL)
	if d.given(s, "token_ttl") && (oc.TokenTTL.Duration < time.Minute || oc.TokenTTL.Duration > MaxTokenTTL) {
		d.invalid(s, "token_ttl", "must be between 1m and %v, have %v", MaxTokenTTL, oc.TokenTTL.Duration)
	}
	// Tokens cross the API: it needs TLS unless it listens on loopback.
	if a := c.Listen.API; a == nil {
		d.errAt("identity.oidc", "[identity.oidc] needs a [listen.api] table: the login callback is served there")
	} else if !a.TLS && !loopbackListener(a.Address) {
		d.errAt("listen.api.address", "listen.api: tls = true is required with [identity.oidc] unless the API listens on a loopback address, have %q", a.Address)
	}
}

// checkSecureURL returns what is wrong with u as an issuer or redirect
// URL, or "": https, or http on a loopback host.
func checkSecureURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "want an https:// URL"
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "must not carry user info, a query or a fragment"
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return "must be https:// (http:// is accepted for loopback hosts only)"
	}
	return ""
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// loopbackListener reports whether a listener address binds loopback only.
func loopbackListener(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	return err == nil && h != "" && isLoopbackHost(h)
}
