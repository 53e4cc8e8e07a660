package identity

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAuthenticateIssuedToken is what every session start, API call
// and SSH password sign-in with an issued token costs.
func BenchmarkAuthenticateIssuedToken(b *testing.B) {
	tokens, err := OpenTokens(filepath.Join(b.TempDir(), "k"), memRevocations{})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := tokens.Issue("sub-1", alice, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	d, _ := NewDirectory(nil)
	d.UseIssued(tokens, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.AuthenticateToken(tok); err != nil {
			b.Fatal(err)
		}
	}
}
