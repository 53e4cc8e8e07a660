package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestOIDCErrors checks that every mistake in [identity.oidc] is reported
// with its line, and that the client secret never appears in a message.
func TestOIDCErrors(t *testing.T) {
	file := filepath.Join("testdata", "oidc_invalid.toml")
	_, err := Load(file)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := []string{
		`testdata/oidc_invalid.toml:2: listen.api: tls = true is required with [identity.oidc] unless the API listens on a loopback address, have "0.0.0.0:8080"`,
		`testdata/oidc_invalid.toml:4: missing required key "identity.oidc.client_id"`,
		`testdata/oidc_invalid.toml:5: key "identity.oidc.issuer": must be https:// (http:// is accepted for loopback hosts only)`,
		`testdata/oidc_invalid.toml:6: key "identity.oidc.client_secret": not a secret reference: secrets are referenced, never inlined; write "scheme:reference" such as "env:PGPASSWORD" or "file:/etc/gatewayd/pg.pass" (known schemes: env, file)`,
		`testdata/oidc_invalid.toml:7: key "identity.oidc.redirect_url": must end with /v1/login/callback (the gateway API's callback), have path "/callback"`,
		`testdata/oidc_invalid.toml:8: key "identity.oidc.signing_algs": "HS256" is not accepted (want some of RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512, EdDSA; none and HMAC algorithms never are)`,
		`testdata/oidc_invalid.toml:8: key "identity.oidc.signing_algs": "none" is not accepted (want some of RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512, EdDSA; none and HMAC algorithms never are)`,
		`testdata/oidc_invalid.toml:9: key "identity.oidc.clock_leeway": must be at most 5m0s, have 10m0s`,
		`testdata/oidc_invalid.toml:10: key "identity.oidc.token_ttl": must be between 1m and 168h0m0s, have 30s`,
		`testdata/oidc_invalid.toml:11: key "identity.oidc.allowed_domains": entry 1 is not a domain such as "example.com"`,
		`testdata/oidc_invalid.toml:13: unknown key "identity.oidc.colour"`,
	}
	got := strings.Split(err.Error(), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Error("an error shows the inlined client secret")
	}
}
