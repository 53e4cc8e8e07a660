package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// Extensions of the user certificates the CA signs, beyond OpenSSH's
// permit-* ones. They are signed with the certificate, so the gateway can
// trust them; OpenSSH ignores extensions it does not know.
const (
	extIdentity = "identity@gatewayd" // JSON: name, email, groups
	extTokenID  = "token-id@gatewayd" // the gateway token the certificate came with
)

// certBackdate is how far before now a certificate becomes valid, for
// clients whose clock runs a little behind.
const certBackdate = time.Minute

// UserCA signs short-lived SSH user certificates for identities that signed
// in, and recognises them when a client offers one. It is safe for
// concurrent use.
type UserCA struct {
	signer ssh.Signer
	tokens *Tokens // for revocation; may be nil
	now    func() time.Time
}

// OpenUserCA loads the CA key from keyFile, making an Ed25519 key (mode
// 0600) on first use. A certificate whose token tokens says is revoked is
// refused.
func OpenUserCA(keyFile string, tokens *Tokens) (*UserCA, error) {
	key, err := loadOrCreateKey(keyFile, "SSH user CA key")
	if err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: loading the SSH user CA: %w", err)
	}
	return &UserCA{signer: s, tokens: tokens, now: time.Now}, nil
}

// PublicKey is the CA's public key as an authorized_keys line (what
// TrustedUserCAKeys takes in sshd_config).
func (ca *UserCA) PublicKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca.signer.PublicKey())))
}

// Sign certifies pub (an authorized_keys line) for the holder of c until
// c expires: principal the identity's name, key id naming it and the token.
func (ca *UserCA) Sign(pubLine string, c Claims) (*ssh.Certificate, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pubLine))
	if err != nil {
		return nil, fmt.Errorf("identity: the SSH public key does not parse: %w", err)
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, errors.New("identity: give an SSH public key, not a certificate")
	}
	if err := CheckUserKey(pub); err != nil {
		return nil, err
	}
	idJSON, err := json.Marshal(c.Identity())
	if err != nil {
		return nil, fmt.Errorf("identity: encoding the certificate identity: %w", err)
	}
	serial := make([]byte, 8)
	if _, err := rand.Read(serial); err != nil {
		return nil, fmt.Errorf("identity: making a certificate serial: %w", err)
	}
	var sn uint64
	for _, b := range serial {
		sn = sn<<8 | uint64(b)
	}
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          sn,
		CertType:        ssh.UserCert,
		KeyId:           fmt.Sprintf("gatewayd:%s:%s", c.Name, c.ID),
		ValidPrincipals: []string{c.Name},
		ValidAfter:      uint64(ca.now().Add(-certBackdate).Unix()),
		ValidBefore:     uint64(c.Expiry),
		Permissions: ssh.Permissions{Extensions: map[string]string{
			"permit-pty":             "",
			"permit-port-forwarding": "",
			extIdentity:              string(idJSON),
			extTokenID:               c.ID,
		}},
	}
	if err := cert.SignCert(rand.Reader, ca.signer); err != nil {
		return nil, fmt.Errorf("identity: signing the certificate: %w", err)
	}
	return cert, nil
}

// Check returns the identity a user certificate certifies: signed by this
// CA, a user certificate, within its validity, its principal the
// identity's name, its token not revoked. The caller has checked that the
// client holds the certified key.
func (ca *UserCA) Check(cert *ssh.Certificate) (protocol.Identity, error) {
	if cert.CertType != ssh.UserCert {
		return protocol.Identity{}, errors.New("identity: not a user certificate")
	}
	if !slices.Equal(cert.SignatureKey.Marshal(), ca.signer.PublicKey().Marshal()) {
		return protocol.Identity{}, errors.New("identity: certificate signed by an unknown authority")
	}
	var id protocol.Identity
	if err := json.Unmarshal([]byte(cert.Extensions[extIdentity]), &id); err != nil || id.Name == "" {
		return protocol.Identity{}, errors.New("identity: certificate carries no gatewayd identity")
	}
	checker := ssh.CertChecker{
		IsUserAuthority:          func(auth ssh.PublicKey) bool { return true }, // compared above
		Clock:                    ca.now,
		SupportedCriticalOptions: nil,
	}
	// CheckCert verifies the CA's signature, the validity window, the
	// principal and that no unknown critical option is set.
	if err := checker.CheckCert(id.Name, cert); err != nil {
		return protocol.Identity{}, fmt.Errorf("identity: %w", err)
	}
	if ca.tokens != nil && ca.tokens.Revoked(cert.Extensions[extTokenID]) {
		return protocol.Identity{}, ErrTokenRevoked
	}
	id.CredentialID = cert.Extensions[extTokenID]
	id.Expires = time.Time{}
	if cert.ValidBefore < math.MaxInt64 {
		id.Expires = time.Unix(int64(cert.ValidBefore), 0)
	}
	return id, nil
}

// MinRSABits is the smallest RSA key the user CA certifies.
const MinRSABits = 2048

// CheckUserKey refuses keys too weak to certify: DSA, and RSA under
// MinRSABits. Ed25519, ECDSA and their security-key forms pass.
func CheckUserKey(pub ssh.PublicKey) error {
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return errors.New("identity: unreadable RSA key")
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < MinRSABits {
			return fmt.Errorf("identity: RSA keys under %d bits are not certified; use ssh-keygen -t ed25519", MinRSABits)
		}
		return nil
	}
	return fmt.Errorf("identity: %s keys are not certified; use ssh-keygen -t ed25519", pub.Type())
}
