package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// IssuedPrefix starts every token the gateway issues at login, so that
// people and secret scanners recognise one. Static tokens start with gwt_.
const IssuedPrefix = "gwi_"

// issuedIssuer is the iss and aud of issued tokens: they are only ever
// checked by the gateway that signed them.
const issuedIssuer = "gatewayd"

// maxIssuedToken bounds the length of a token Verify looks at.
const maxIssuedToken = 8 << 10

// Errors of Verify. Callers answer every one alike to clients; the
// distinction is for logs and audit.
var (
	ErrTokenMalformed = errors.New("identity: not a gateway token")
	ErrTokenSignature = errors.New("identity: gateway token signature does not verify")
	ErrTokenExpired   = errors.New("identity: gateway token expired")
	ErrTokenRevoked   = errors.New("identity: gateway token revoked")
)

// Claims are what an issued token says about its holder.
type Claims struct {
	ID       string   `json:"jti"`
	Issuer   string   `json:"iss"`
	Audience string   `json:"aud"`
	Subject  string   `json:"sub"` // the subject at the identity provider
	Name     string   `json:"name"`
	Email    string   `json:"email,omitempty"`
	Groups   []string `json:"groups"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
}

// Identity is the holder as the protocol handlers see it.
func (c Claims) Identity() protocol.Identity {
	return protocol.Identity{Name: c.Name, Email: c.Email, Groups: slices.Clone(c.Groups), Expires: c.Expires(), CredentialID: c.ID}
}

// Expires is the token's expiry time.
func (c Claims) Expires() time.Time { return time.Unix(c.Expiry, 0) }

// Revocations persists revoked token ids until the tokens expire. The
// SQLite store implements it.
type Revocations interface {
	// RevokeToken records that token id is revoked until expires.
	RevokeToken(id string, expires time.Time) error
	// RevokedTokens returns the revoked ids that have not expired by now,
	// with their expiry.
	RevokedTokens(now time.Time) (map[string]time.Time, error)
}

// Tokens issues and checks the gateway's own short-lived tokens: compact
// JWS (EdDSA over Ed25519, nothing else accepted) with the IssuedPrefix,
// signed by a key kept in the data directory. It is safe for concurrent
// use.
type Tokens struct {
	key    ed25519.PrivateKey
	signer jose.Signer
	store  Revocations
	now    func() time.Time

	mu      sync.Mutex
	revoked map[string]time.Time // id -> expiry
}

// OpenTokens loads the signing key from keyFile (making an Ed25519 key,
// mode 0600, on first use) and the revocations from store.
func OpenTokens(keyFile string, store Revocations) (*Tokens, error) {
	key, err := loadOrCreateKey(keyFile, "gateway token signing key")
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key},
		(&jose.SignerOptions{}).WithType("gatewayd+jwt"))
	if err != nil {
		return nil, fmt.Errorf("identity: making the token signer: %w", err)
	}
	t := &Tokens{key: key, signer: signer, store: store, now: time.Now, revoked: map[string]time.Time{}}
	if store != nil {
		revoked, err := store.RevokedTokens(t.now())
		if err != nil {
			return nil, fmt.Errorf("identity: reading revoked tokens: %w", err)
		}
		t.revoked = revoked
		if t.revoked == nil {
			t.revoked = map[string]time.Time{}
		}
	}
	return t, nil
}

// Issue signs a token for id valid for ttl, and returns it with its claims.
func (t *Tokens) Issue(subject string, id protocol.Identity, ttl time.Duration) (string, Claims, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", Claims{}, fmt.Errorf("identity: making a token id: %w", err)
	}
	now := t.now()
	c := Claims{
		ID: hex.EncodeToString(raw), Issuer: issuedIssuer, Audience: issuedIssuer,
		Subject: subject, Name: id.Name, Email: id.Email, Groups: slices.Clone(id.Groups),
		IssuedAt: now.Unix(), Expiry: now.Add(ttl).Unix(),
	}
	if c.Groups == nil {
		c.Groups = []string{}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", Claims{}, fmt.Errorf("identity: encoding token claims: %w", err)
	}
	jws, err := t.signer.Sign(payload)
	if err != nil {
		return "", Claims{}, fmt.Errorf("identity: signing a token: %w", err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return "", Claims{}, fmt.Errorf("identity: encoding a token: %w", err)
	}
	if len(IssuedPrefix)+len(compact) > maxIssuedToken {
		return "", Claims{}, fmt.Errorf("identity: a token for %s would be longer than %d bytes (%d groups)", id.Name, maxIssuedToken, len(id.Groups))
	}
	return IssuedPrefix + compact, c, nil
}

// Verify checks an issued token: prefix, algorithm (EdDSA only), signature,
// issuer, audience, expiry and revocation.
func (t *Tokens) Verify(token string) (Claims, error) {
	rest, ok := strings.CutPrefix(token, IssuedPrefix)
	if !ok || len(token) > maxIssuedToken {
		return Claims{}, ErrTokenMalformed
	}
	jws, err := jose.ParseSignedCompact(rest, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(jws.Signatures) != 1 {
		return Claims{}, ErrTokenMalformed
	}
	payload, err := jws.Verify(t.key.Public())
	if err != nil {
		return Claims{}, ErrTokenSignature
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil || c.ID == "" || c.Name == "" {
		return Claims{}, ErrTokenMalformed
	}
	if c.Issuer != issuedIssuer || c.Audience != issuedIssuer {
		return Claims{}, ErrTokenMalformed
	}
	if !t.now().Before(c.Expires()) {
		return Claims{}, ErrTokenExpired
	}
	if t.Revoked(c.ID) {
		return Claims{}, ErrTokenRevoked
	}
	return c, nil
}

// Revoked reports whether token id has been revoked.
func (t *Tokens) Revoked(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.revoked[id]
	return ok
}

// Revoke revokes a token until its expiry and persists the revocation.
// The token is refused from now on even when persisting fails (the error
// says so): then only a restart would bring it back.
func (t *Tokens) Revoke(c Claims) error {
	t.mu.Lock()
	now := t.now()
	for id, exp := range t.revoked {
		if now.After(exp) {
			delete(t.revoked, id)
		}
	}
	t.revoked[c.ID] = c.Expires()
	t.mu.Unlock()
	if t.store != nil {
		if err := t.store.RevokeToken(c.ID, c.Expires()); err != nil {
			return fmt.Errorf("identity: the token is revoked until the gateway restarts, but recording the revocation failed: %w", err)
		}
	}
	return nil
}

// loadOrCreateKey reads an Ed25519 private key (PKCS#8 PEM), making one
// (mode 0600) when the file does not exist. A key readable by others is
// refused.
func loadOrCreateKey(path, what string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("identity: making the %s: %w", what, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("identity: encoding the %s: %w", what, err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("identity: creating the %s's directory: %w", what, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("identity: writing the %s: %w", what, err)
		}
		err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("identity: writing the %s: %w", what, err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("identity: reading the %s: %w", what, err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity: the %s %s is readable by group or others (mode %v): chmod 600 it", what, path, info.Mode().Perm())
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("identity: the %s %s is not a PEM private key", what, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: the %s %s does not parse: %w", what, path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity: the %s %s is not an Ed25519 key", what, path)
	}
	return priv, nil
}
