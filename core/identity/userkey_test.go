package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The user CA certifies only keys strong enough: not DSA, not short RSA.
func TestUserCARefusesWeakKeys(t *testing.T) {
	ca, err := OpenUserCA(filepath.Join(t.TempDir(), "ca"), nil)
	if err != nil {
		t.Fatal(err)
	}
	claims := Claims{ID: "t1", Name: "alice", Email: "alice@example.com", Expiry: time.Now().Add(time.Hour).Unix()}
	line := func(k any) string {
		pub, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(ssh.MarshalAuthorizedKey(pub))
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	// A DSA key made by ssh-keygen -t dsa (Go's crypto/dsa is deprecated).
	dsaLine, err := os.ReadFile("testdata/dsa.pub")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  any
		want string // "" for certified
	}{
		{"ed25519", edPub, ""},
		{"ecdsa p256", &ec.PublicKey, ""},
		{"rsa 2048", &rsa2048.PublicKey, ""},
		{"rsa 1024", &rsa1024.PublicKey, "RSA keys under 2048 bits"},
		{"dsa", dsaLine, "ssh-dss keys are not certified"},
	} {
		l, ok := tc.key.([]byte)
		if !ok {
			l = []byte(line(tc.key))
		}
		_, err := ca.Sign(string(l), claims)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want refused (%s)", tc.name, err, tc.want)
		}
	}
}
