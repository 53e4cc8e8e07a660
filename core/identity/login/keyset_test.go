package login

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzKeySetVerify feeds arbitrary tokens to the key set: no panic, no
// fetch past the rate limit, and a payload only for a token the key
// really signed.
func FuzzKeySetVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		f.Fatal(err)
	}
	jws, _ := signer.Sign([]byte(`{"iss":"x"}`))
	good, _ := jws.CompactSerialize()
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	ks := &keySet{
		url: "http://127.0.0.1:1/never", algs: []jose.SignatureAlgorithm{jose.EdDSA}, interval: time.Hour,
		now: time.Now, keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Use: "sig"}}, fetched: time.Now(),
	}
	f.Fuzz(func(t *testing.T, raw string) {
		payload, err := ks.VerifySignature(context.Background(), raw)
		if err == nil && string(payload) != `{"iss":"x"}` {
			t.Fatalf("verified a payload the key did not sign: %q", payload)
		}
		if ks.fetches != 0 {
			t.Fatal("a token caused a fetch inside the interval")
		}
	})
}
