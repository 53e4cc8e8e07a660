package sqlite

import (
	"path/filepath"
	"testing"
	"time"
)

func TestRevocations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got, err := s.RevokedTokens(now); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	if err := s.RevokeToken("a", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken("old", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Revoking again moves the expiry.
	if err := s.RevokeToken("a", now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A restart keeps the revocation; an expired one is gone.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.RevokedTokens(now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["a"].Equal(now.Add(2*time.Hour).UTC().Truncate(0)) {
		t.Fatalf("after reopening: %v", got)
	}
}
