package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckAcceptsPluginSchemes: `gatewayd check` knows the secret scheme of
// every [[plugin]] of kind secret besides the built-in ones, and no other.
func TestCheckAcceptsPluginSchemes(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "gatewayd-secret-sops")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := func(secret string) string {
		path := filepath.Join(dir, "gateway.toml")
		toml := `
[listen.postgres]
address = "127.0.0.1:0"

[[plugin]]
name = "sops"
kind = "secret"
path = "gatewayd-secret-sops"
sha256 = "` + strings.Repeat("ab", 32) + `"

[[connection]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
secret = "` + secret + `"
`
		if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tt := range []struct {
		secret string
		code   int
		out    string
	}{
		{"sops:secrets/app.yaml#app_db", 0, "configuration OK"},
		{"env:APP_DB_PASSWORD", 0, "configuration OK"},
		{"vault:kv/app", 1, `unknown secret scheme "vault" (known schemes: env, file, sops)`},
	} {
		var stderr bytes.Buffer
		code := run([]string{"check", "--config", conf(tt.secret)}, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.out) {
			t.Errorf("check with secret %q: exit %d, %s", tt.secret, code, stderr.String())
		}
	}
}
