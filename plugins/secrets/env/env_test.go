package env

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

func TestResolve(t *testing.T) {
	const value = "s3cret-Value-42"
	t.Setenv("GWTEST_SET", value)
	t.Setenv("GWTEST_EMPTY", "")
	tests := []struct {
		name    string
		ref     string
		want    string
		wantErr error
		errHas  string
	}{
		{"set", "GWTEST_SET", value, nil, ""},
		{"unset", "GWTEST_UNSET_VARIABLE", "", secret.ErrNotFound, `"GWTEST_UNSET_VARIABLE": not set`},
		{"empty", "GWTEST_EMPTY", "", secret.ErrNotFound, `"GWTEST_EMPTY": empty`},
		{"no name", "", "", secret.ErrNotFound, "not a variable name"},
		{"bad name", "1ABC", "", secret.ErrNotFound, "not a variable name"},
		{"equals", "A=B", "", secret.ErrNotFound, "not a variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := New().Resolve(context.Background(), secret.ResolveRequest{Reference: tt.ref})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %q, want it to contain %q", err, tt.errHas)
				}
				if strings.Contains(err.Error(), value) {
					t.Errorf("error contains the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Value.Reveal(); got != tt.want {
				t.Errorf("value %q, want %q", got, tt.want)
			}
			if resp.TTL != 0 {
				t.Errorf("TTL = %v, want 0 (resolver default)", resp.TTL)
			}
		})
	}
}

func TestResolveZeroValueBackend(t *testing.T) {
	t.Setenv("GWTEST_ZERO", "x")
	var b Backend
	resp, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: "GWTEST_ZERO"})
	if err != nil || resp.Value.Reveal() != "x" {
		t.Fatalf("Resolve = %v, %v", resp, err)
	}
}

func TestResolveCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &Backend{lookup: func(string) (string, bool) { t.Fatal("looked up after cancel"); return "", false }}
	if _, err := b.Resolve(ctx, secret.ResolveRequest{Reference: "X"}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
