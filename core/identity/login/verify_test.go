package login

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatewayd-access/gatewayd/core/config"
)

// testOP serves a discovery document and a JWKS, and signs ID tokens with
// its RSA key, so that the relying party's checks can be driven with
// tokens a real provider would not make. (The flows themselves are tested
// against a real provider in cmd/gatewayctl.)
type testOP struct {
	srv     *httptest.Server
	key     *rsa.PrivateKey
	kid     string
	fetches atomic.Int64
}

func newTestOP(t *testing.T) *testOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &testOP{key: key, kid: "k1"}
	mux := http.NewServeMux()
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": op.srv.URL, "authorization_endpoint": op.srv.URL + "/auth", "token_endpoint": op.srv.URL + "/token",
			"jwks_uri": op.srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		op.fetches.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: op.kid, Algorithm: "RS256", Use: "sig"}}})
	})
	return op
}

// claims are an ID token's claims as the OP would issue them for the test
// relying party, changed by edits.
func (op *testOP) claims(edits ...func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": op.srv.URL, "sub": "u1", "aud": "gatewayd", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "nonce": "n1", "email": "alice@example.com", "email_verified": true,
		"groups": []string{"dev"},
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func (op *testOP) sign(t *testing.T, claims map[string]any, kid string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: op.key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// unsigned makes a token with the given header and no or an HMAC
// signature, as an attacker would.
func unsigned(header map[string]any, claims map[string]any, hmacKey []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	if hmacKey == nil {
		return in + "."
	}
	m := hmac.New(sha256.New, hmacKey)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func testRP(t *testing.T, op *testOP, edit func(*config.OIDC)) (*rp, *discovered) {
	t.Helper()
	cfg := config.OIDC{
		Issuer: op.srv.URL, ClientID: "gatewayd", RedirectURL: "http://127.0.0.1:1/v1/login/callback",
		Scopes: config.DefaultOIDCScopes(), GroupsClaim: "groups", AllowedDomains: []string{"example.com"},
		SigningAlgs: config.DefaultSigningAlgs(), ClockLeeway: config.Duration{Duration: 30 * time.Second},
		JWKSRefreshInterval: config.Duration{Duration: time.Minute},
	}
	if edit != nil {
		edit(&cfg)
	}
	r := &rp{cfg: cfg, client: op.srv.Client(), now: time.Now}
	d, err := r.discover(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return r, d
}

func TestVerifyIDToken(t *testing.T) {
	op := newTestOP(t)
	r, d := testRP(t, op, func(c *config.OIDC) { c.SigningAlgs = []string{"RS256"} })
	der, _ := x509.MarshalPKIXPublicKey(&op.key.PublicKey)
	pubPEM := "-----BEGIN PUBLIC KEY-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END PUBLIC KEY-----\n"
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: other}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	signOther := func(c map[string]any) string {
		p, _ := json.Marshal(c)
		jws, _ := otherSigner.Sign(p)
		s, _ := jws.CompactSerialize()
		return s
	}
	tests := []struct {
		name  string
		token string
		nonce string
		want  string // "" accepts
	}{
		{"valid", op.sign(t, op.claims(), "k1"), "n1", ""},
		{"another audience", op.sign(t, op.claims(func(c map[string]any) { c["aud"] = "someone-else" }), "k1"), "n1",
			`expected audience "gatewayd"`},
		{"several audiences, azp another", op.sign(t, op.claims(func(c map[string]any) { c["aud"] = []string{"gatewayd", "x"}; c["azp"] = "x" }), "k1"), "n1",
			"not issued to this gateway"},
		{"expired", op.sign(t, op.claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "k1"), "n1",
			"the ID token expired at"},
		{"expired within the leeway", op.sign(t, op.claims(func(c map[string]any) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }), "k1"), "n1", ""},
		{"issued in the future", op.sign(t, op.claims(func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }), "k1"), "n1",
			"issued in the future"},
		{"not valid yet", op.sign(t, op.claims(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), "k1"), "n1",
			"not valid yet"},
		{"alg none", unsigned(map[string]any{"alg": "none", "kid": "k1"}, op.claims(), nil), "n1",
			`unexpected signature algorithm "none"`},
		{"HS256 keyed with the public key", unsigned(map[string]any{"alg": "HS256", "kid": "k1"}, op.claims(), []byte(pubPEM)), "n1",
			`unexpected signature algorithm "HS256"`},
		{"ES256 not in signing_algs", signOther(op.claims()), "n1", `unexpected signature algorithm "ES256"`},
		{"signed by another key", func() string {
			k, _ := rsa.GenerateKey(rand.Reader, 2048)
			o := &testOP{key: k, srv: op.srv}
			return o.sign(t, op.claims(), "k1")
		}(), "n1", "does not verify with the provider's keys"},
		{"missing nonce", op.sign(t, op.claims(func(c map[string]any) { delete(c, "nonce") }), "k1"), "n1",
			"carries no nonce"},
		{"nonce of another login", op.sign(t, op.claims(), "k1"), "n2", "nonce does not match"},
		{"another issuer", op.sign(t, op.claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), "k1"), "n1",
			"issued by a different provider"},
		{"outside the allowed domains", op.sign(t, op.claims(func(c map[string]any) { c["email"] = "mallory@example.org" }), "k1"), "n1",
			"mallory@example.org is not in an allowed domain (example.com)"},
		{"unverified email", op.sign(t, op.claims(func(c map[string]any) { c["email_verified"] = false }), "k1"), "n1",
			"is not verified"},
		{"unverified email, said as a string", op.sign(t, op.claims(func(c map[string]any) { c["email_verified"] = "false" }), "k1"), "n1",
			"is not verified"},
		{"verified email, said as a string", op.sign(t, op.claims(func(c map[string]any) { c["email_verified"] = "true" }), "k1"), "n1", ""},
		{"email_verified neither true nor false", op.sign(t, op.claims(func(c map[string]any) { c["email_verified"] = 0 }), "k1"), "n1",
			"email_verified"},
		{"no email", op.sign(t, op.claims(func(c map[string]any) { delete(c, "email") }), "k1"), "n1",
			"carries an email"},
		{"groups not strings", op.sign(t, op.claims(func(c map[string]any) { c["groups"] = []any{"dev", 3} }), "k1"), "n1",
			"other than strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := r.verify(context.Background(), d, tt.token, tt.nonce, true, "")
			if tt.want == "" {
				if err != nil || u.Email != "alice@example.com" || u.Subject != "u1" || fmt.Sprint(u.Groups) != "[dev]" {
					t.Fatalf("verify: %+v %v", u, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("verify: %v, want an error containing %q", err, tt.want)
			}
			if _, ok := err.(*Refusal); !ok {
				t.Fatalf("error %T is not a *Refusal", err)
			}
		})
	}
}

// TestUnknownKeyIDFlood checks that tokens naming key ids the provider does
// not publish cost at most one JWKS fetch per interval, and that a key
// rotated in is picked up once the interval has passed.
func TestUnknownKeyIDFlood(t *testing.T) {
	op := newTestOP(t)
	now := time.Now()
	clock := func() time.Time { return now }
	r, d := testRP(t, op, nil)
	r.now, d.keys.now = clock, clock
	if _, err := r.verify(context.Background(), d, op.sign(t, op.claims(), "k1"), "n1", true, ""); err != nil {
		t.Fatal(err)
	}
	before := op.fetches.Load()
	for i := range 500 {
		_, err := r.verify(context.Background(), d, op.sign(t, op.claims(), fmt.Sprintf("made-up-%d", i)), "n1", true, "")
		if err == nil {
			t.Fatal("a token with an unknown key id was accepted")
		}
		if !strings.Contains(err.Error(), "fetched too recently") {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if n := op.fetches.Load() - before; n > 1 {
		t.Fatalf("%d JWKS fetches for 500 unknown key ids, want at most 1", n)
	}
	// The provider rotates to k2; after the interval the new key is
	// fetched and accepted, once.
	op.kid = "k2"
	now = now.Add(2 * time.Minute)
	if _, err := r.verify(context.Background(), d, op.sign(t, op.claims(), "k2"), "n1", true, ""); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := op.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches after rotation, want 1", n)
	}
}
