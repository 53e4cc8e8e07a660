package sops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatewayd-access/gatewayd/internal/plugintest"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Distinctive values, so that a leak is found by a substring search.
const (
	appDB   = "SOPS-pw-3e1f0a7c-app"
	nested  = "SOPS-pw-91bd22c4-nested"
	dotted  = "SOPS-pw-5a0c7e19-dotted"
	jsonPW  = "SOPS-pw-c4d2b8e0-json"
	dotenvP = "SOPS-pw-77aa01fe-env"
)

var (
	dir     string // encrypted files
	keyFile string // the age key they were encrypted for
	sopsCLI string
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	var err error
	sopsCLI, err = plugintest.SopsCLI(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	if err != nil {
		return 0, err
	}
	dir, err = os.MkdirTemp("", "gatewayd-sops-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	keyFile = filepath.Join(dir, "age.key")
	recipient, err := plugintest.AgeKey(keyFile)
	if err != nil {
		return 0, err
	}
	files := map[string]string{
		"app.yaml": "app_db: " + appDB + "\n" +
			"db:\n  reports:\n    password: " + nested + "\n  port: 5432\n" +
			"\"legacy.db\": " + dotted + "\n" +
			"enabled: true\n" +
			"hosts: [a, b]\n" +
			"empty: \"\"\n" +
			"nothing: null\n",
		"app.json": `{"app_db": "` + jsonPW + `", "port": 5432, "ratio": 0.25, "db": {"user": "app"}}`,
		"app.env":  "APP_DB=" + dotenvP + "\nOTHER=x\n",
	}
	for name, plain := range files {
		p := filepath.Join(dir, "plain-"+name)
		if err := os.WriteFile(p, []byte(plain), 0o600); err != nil {
			return 0, err
		}
		if err := plugintest.SopsEncrypt(sopsCLI, recipient, p, filepath.Join(dir, name)); err != nil {
			return 0, err
		}
	}
	return m.Run(), nil
}

func resolve(t *testing.T, ref string) (string, error) {
	t.Helper()
	resp, err := New().Resolve(context.Background(), secret.ResolveRequest{Reference: ref})
	if err != nil {
		return "", err
	}
	return resp.Value.Reveal(), nil
}

func TestResolve(t *testing.T) {
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	tests := []struct {
		ref, want string
	}{
		{"app.yaml#app_db", appDB},
		{"app.yaml#db.reports.password", nested},
		{"app.yaml#legacy.db", dotted},
		{"app.yaml#db.port", "5432"},
		{"app.yaml#enabled", "true"},
		{"app.json#app_db", jsonPW},
		{"app.json#port", "5432"},
		{"app.json#ratio", "0.25"},
		{"app.json#db.user", "app"},
		{"app.env#APP_DB", dotenvP},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := resolve(t, filepath.Join(dir, tt.ref))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Relative to the working directory, which gatewayd sets to the
	// configuration file's directory.
	t.Chdir(dir)
	if got, err := resolve(t, "app.yaml#app_db"); err != nil || got != appDB {
		t.Errorf("relative path: %q, %v", got, err)
	}
}

// TestErrors checks each failure: its sentinel, what its message says, and
// that it never carries a value from any file.
func TestErrors(t *testing.T) {
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if _, err := plugintest.AgeKey(otherKey); err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.yaml")
	enc, err := os.ReadFile(filepath.Join(dir, "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Swap two encrypted values: each still decrypts, the MAC does not match.
	tamper := strings.Replace(string(enc), "lastmodified:", "lastmodified:", 1)
	lines := strings.Split(tamper, "\n")
	var encLines []int
	for i, l := range lines {
		if strings.Contains(l, "ENC[AES256_GCM") && !strings.Contains(l, "mac:") {
			encLines = append(encLines, i)
		}
	}
	if len(encLines) < 2 {
		t.Fatalf("too few encrypted values in\n%s", enc)
	}
	if err := os.WriteFile(tampered, []byte(strings.Join(lines[:encLines[0]], "\n")+"\n"+
		strings.Join(lines[encLines[0]+1:], "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain-app.yaml")

	tests := []struct {
		name, ref string
		env       string // SOPS_AGE_KEY_FILE
		is        error
		text      string
	}{
		{"no key part", filepath.Join(dir, "app.yaml"), keyFile, secret.ErrNotFound, "want PATH#KEY"},
		{"empty key", filepath.Join(dir, "app.yaml") + "#", keyFile, secret.ErrNotFound, "want PATH#KEY"},
		{"missing file", filepath.Join(dir, "nope.yaml") + "#x", keyFile, secret.ErrNotFound, "nope.yaml"},
		{"unknown format", filepath.Join(dir, "app.toml") + "#x", keyFile, secret.ErrNotFound, "unknown format"},
		{"missing key", filepath.Join(dir, "app.yaml") + "#nope", keyFile, secret.ErrNotFound, `no key "nope"`},
		{"missing nested key", filepath.Join(dir, "app.yaml") + "#db.reports.user", keyFile, secret.ErrNotFound, `no key "db.reports.user"`},
		{"map", filepath.Join(dir, "app.yaml") + "#db", keyFile, secret.ErrNotFound, "is a map"},
		{"list", filepath.Join(dir, "app.yaml") + "#hosts", keyFile, secret.ErrNotFound, "is a list"},
		{"empty value", filepath.Join(dir, "app.yaml") + "#empty", keyFile, secret.ErrNotFound, "is empty"},
		{"null value", filepath.Join(dir, "app.yaml") + "#nothing", keyFile, secret.ErrNotFound, `no key "nothing"`},
		{"dotenv missing", filepath.Join(dir, "app.env") + "#NOPE", keyFile, secret.ErrNotFound, `no key "NOPE"`},
		{"wrong age key", filepath.Join(dir, "app.yaml") + "#app_db", otherKey, nil, "SOPS_AGE_KEY_FILE"},
		{"no age key", filepath.Join(dir, "app.yaml") + "#app_db", "/nonexistent/age.key", nil, "decrypting"},
		{"not encrypted", plain + "#app_db", keyFile, nil, "not encrypted with sops"},
		{"tampered", tampered + "#app_db", keyFile, nil, "integrity check failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOPS_AGE_KEY_FILE", tt.env)
			_, err := resolve(t, tt.ref)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("%q does not say %q", err, tt.text)
			}
			for _, v := range []string{appDB, nested, dotted, jsonPW, dotenvP, "SOPS-pw"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error carries a value: %v", err)
				}
			}
		})
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New().Resolve(ctx, secret.ResolveRequest{Reference: "x.yaml#k"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
