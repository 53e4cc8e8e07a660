package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds the provider's key set document.
const maxJWKSBytes = 1 << 20

// errKeyRateLimited is returned for a token signed with a key id the
// provider did not publish when its keys were fetched less than the
// refresh interval ago.
var errKeyRateLimited = errors.New("signed with an unknown key id, and the provider's keys were fetched too recently to fetch them again")

// keySet is the provider's signing keys (its JWKS), fetched when a token
// names a key id not seen yet, but at most once per interval: a flood of
// tokens with made-up key ids costs the provider one request per interval.
type keySet struct {
	url      string
	client   *http.Client
	algs     []jose.SignatureAlgorithm
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // zero before the first fetch
	fetches int       // for tests
}

// VerifySignature implements oidc.KeySet: it accepts only the configured
// algorithms (never none or HMAC), finds the key by key id and returns the
// verified payload.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("%s", describeParseError(raw, k.algs))
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("the token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("the signature does not verify with the provider's keys")
}

// lookup returns the keys with key id kid (every key when kid is empty),
// fetching the key set when kid is unknown and the interval allows.
func (k *keySet) lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if found := k.match(kid); len(found) > 0 {
		return found, nil
	}
	if !k.fetched.IsZero() && k.now().Sub(k.fetched) < k.interval {
		return nil, errKeyRateLimited
	}
	if err := k.fetch(ctx); err != nil {
		return nil, err
	}
	if found := k.match(kid); len(found) > 0 {
		return found, nil
	}
	return nil, fmt.Errorf("signed with key id %q, which the provider does not publish", kid)
}

func (k *keySet) match(kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range k.keys {
		if (kid == "" || key.KeyID == kid) && key.Use != "enc" && key.IsPublic() {
			out = append(out, key)
		}
	}
	return out
}

// fetch reads the key set; k.mu is held. A failed fetch counts against
// the interval too, so an unreachable provider is not hammered.
func (k *keySet) fetch(ctx context.Context) error {
	k.fetched = k.now()
	k.fetches++
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("fetching the provider's keys: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching the provider's keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching the provider's keys: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("fetching the provider's keys: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return errors.New("fetching the provider's keys: the key set is larger than 1 MiB")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("fetching the provider's keys: %w", err)
	}
	k.keys = set.Keys
	return nil
}

// describeParseError says why a token did not parse, naming a refused
// algorithm when that is the reason.
func describeParseError(raw string, algs []jose.SignatureAlgorithm) string {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{
		jose.HS256, jose.HS384, jose.HS512, jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384,
		jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
	})
	if err != nil {
		return "not a signed JWT with an accepted algorithm (alg none is never accepted)"
	}
	alg := jose.SignatureAlgorithm(jws.Signatures[0].Header.Algorithm)
	if !slices.Contains(algs, alg) {
		return fmt.Sprintf("signed with algorithm %s, which is not accepted (accepted: %v)", alg, algs)
	}
	return "not a well-formed signed JWT"
}

var _ oidc.KeySet = (*keySet)(nil)
