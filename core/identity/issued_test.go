package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// memRevocations is an in-memory Revocations.
type memRevocations map[string]time.Time

func (m memRevocations) RevokeToken(id string, exp time.Time) error { m[id] = exp; return nil }
func (m memRevocations) RevokedTokens(now time.Time) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for k, v := range m {
		if !v.Before(now) {
			out[k] = v
		}
	}
	return out, nil
}

var alice = protocol.Identity{Name: "alice@example.com", Email: "alice@example.com", Groups: []string{"dev"}}

func TestIssuedTokens(t *testing.T) {
	dir := t.TempDir()
	rev := memRevocations{}
	tokens, err := OpenTokens(filepath.Join(dir, "k"), rev)
	if err != nil {
		t.Fatal(err)
	}
	tok, c, err := tokens.Issue("sub-1", alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, IssuedPrefix) {
		t.Fatalf("token %q lacks the prefix", tok[:8])
	}
	d, _ := NewDirectory(nil)
	d.UseIssued(tokens, nil)
	id, err := d.AuthenticateToken(tok)
	if err != nil || id.Name != alice.Name || id.Groups[0] != "dev" {
		t.Fatalf("AuthenticateToken: %+v %v", id, err)
	}
	if _, err := d.Authenticate("alice@example.com", tok); err != nil {
		t.Fatalf("Authenticate with the right name: %v", err)
	}
	if _, err := d.Authenticate("bob", tok); err == nil {
		t.Fatal("Authenticate accepted alice's token for bob")
	}
	// The same key after a restart verifies; another key does not.
	again, err := OpenTokens(filepath.Join(dir, "k"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Verify(tok); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
	other, _ := OpenTokens(filepath.Join(dir, "other"), nil)
	if _, err := other.Verify(tok); err != ErrTokenSignature {
		t.Fatalf("another key: %v", err)
	}
	// Tampering, truncation and other algorithms are refused.
	for name, bad := range map[string]string{
		"payload edited": tok[:len(IssuedPrefix)+40] + "A" + tok[len(IssuedPrefix)+41:],
		"no prefix":      strings.TrimPrefix(tok, IssuedPrefix),
		"truncated":      tok[:len(tok)-10],
		"alg none":       IssuedPrefix + "eyJhbGciOiJub25lIn0." + strings.Split(tok, ".")[1] + ".",
		"empty":          IssuedPrefix,
	} {
		if _, err := tokens.Verify(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Expiry.
	tokens.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := tokens.Verify(tok); err != ErrTokenExpired {
		t.Fatalf("expired: %v", err)
	}
	tokens.now = time.Now
	// Revocation persists across a restart.
	if err := tokens.Revoke(c); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Verify(tok); err != ErrTokenRevoked {
		t.Fatalf("revoked: %v", err)
	}
	again, _ = OpenTokens(filepath.Join(dir, "k"), rev)
	if _, err := again.Verify(tok); err != ErrTokenRevoked {
		t.Fatalf("revoked after a restart: %v", err)
	}
	// Authenticate (a PostgreSQL password) says why, for the audit log.
	if _, err := d.Authenticate("alice@example.com", tok); !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("Authenticate with a revoked token: %v, want ErrUnauthenticated saying revoked", err)
	}
	// A token too long to be accepted is not issued.
	many := alice
	many.Groups = make([]string, 500)
	for i := range many.Groups {
		many.Groups[i] = fmt.Sprintf("a-rather-long-group-name-%d", i)
	}
	if _, _, err := tokens.Issue("sub-1", many, time.Hour); err == nil || !strings.Contains(err.Error(), "500 groups") {
		t.Fatalf("issuing an oversized token: %v", err)
	}
	// Without issued tokens configured, a gwi_ token is refused.
	plain, _ := NewDirectory([]config.StaticIdentity{})
	if _, err := plain.AuthenticateToken(tok); err == nil {
		t.Fatal("a directory without issued tokens accepted one")
	}
}

func TestUserCA(t *testing.T) {
	dir := t.TempDir()
	tokens, _ := OpenTokens(filepath.Join(dir, "k"), memRevocations{})
	ca, err := OpenUserCA(filepath.Join(dir, "ca"), tokens)
	if err != nil {
		t.Fatal(err)
	}
	_, c, _ := tokens.Issue("sub-1", alice, time.Hour)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	line := string(ssh.MarshalAuthorizedKey(sshPub))
	cert, err := ca.Sign(line, c)
	if err != nil {
		t.Fatal(err)
	}
	if cert.ValidPrincipals[0] != alice.Name || !strings.Contains(cert.KeyId, alice.Name) || cert.ValidBefore != uint64(c.Expiry) {
		t.Fatalf("certificate: %+v", cert)
	}
	d, _ := NewDirectory(nil)
	d.UseIssued(tokens, ca)
	id, err := d.AuthenticateKey(ssh.MarshalAuthorizedKey(cert))
	if err != nil || id.Name != alice.Name || id.Groups[0] != "dev" {
		t.Fatalf("AuthenticateKey(certificate): %+v %v", id, err)
	}
	// A certificate from another CA, with the same contents, is refused.
	other, _ := OpenUserCA(filepath.Join(dir, "other"), tokens)
	foreign, _ := other.Sign(line, c)
	if _, err := d.AuthenticateKey(ssh.MarshalAuthorizedKey(foreign)); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	// Expired.
	ca.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := d.AuthenticateKey(ssh.MarshalAuthorizedKey(cert)); err == nil {
		t.Fatal("an expired certificate was accepted")
	}
	ca.now = time.Now
	// Revoked with its token.
	_ = tokens.Revoke(c)
	if _, err := d.AuthenticateKey(ssh.MarshalAuthorizedKey(cert)); err == nil {
		t.Fatal("the certificate of a revoked token was accepted")
	}
	// A directory without the CA refuses certificates.
	plain, _ := NewDirectory(nil)
	if _, err := plain.AuthenticateKey(ssh.MarshalAuthorizedKey(cert)); err == nil {
		t.Fatal("a directory without a CA accepted a certificate")
	}
}

// FuzzVerify checks that no input makes Verify panic or accept a token it
// did not sign.
func FuzzVerify(f *testing.F) {
	tokens, err := OpenTokens(filepath.Join(f.TempDir(), "k"), nil)
	if err != nil {
		f.Fatal(err)
	}
	tok, issued, _ := tokens.Issue("s", alice, time.Hour)
	f.Add(tok)
	f.Add(IssuedPrefix + "a.b.c")
	f.Add(IssuedPrefix + "eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		// Only the issued token's claims can verify (a variant encoding
		// of the same signed bytes may).
		c, err := tokens.Verify(s)
		if err == nil && c.ID != issued.ID {
			t.Fatalf("accepted %q as %+v", s, c)
		}
	})
}
