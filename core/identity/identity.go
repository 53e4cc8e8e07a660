// Package identity answers who a client is: it checks a presented gateway
// token against the configured identities. Static identities (service and
// development accounts) are configured with the sha256 of their token;
// people who signed in through the identity provider hold a short-lived
// token the gateway issued (Tokens) and an SSH user certificate its CA
// signed (UserCA).
package identity

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// ErrUnauthenticated is returned for every failed check, whatever the cause.
var ErrUnauthenticated = errors.New("identity: authentication failed")

type static struct {
	id   protocol.Identity
	hash [sha256.Size]byte
	keys [][]byte // SSH public keys, in wire format
}

// Directory holds the configured identities. It is immutable and safe for
// concurrent use.
type Directory struct {
	static []static
	// issued checks tokens the gateway issued at login, ca the SSH user
	// certificates it signed; both nil without OIDC login.
	issued *Tokens
	ca     *UserCA
}

// UseIssued makes the directory accept tokens issued by t and SSH user
// certificates signed by ca (either may be nil). Call it before the
// directory is in use.
func (d *Directory) UseIssued(t *Tokens, ca *UserCA) {
	d.issued, d.ca = t, ca
}

// Revoked reports whether the issued credential id (a token's, which its
// certificates share) has been revoked since it signed a session in.
func (d *Directory) Revoked(id string) bool {
	return id != "" && d.issued != nil && d.issued.Revoked(id)
}

// NewDirectory builds a Directory from configuration.
func NewDirectory(ids []config.StaticIdentity) (*Directory, error) {
	d := &Directory{}
	for _, s := range ids {
		raw, err := hex.DecodeString(s.TokenSHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("identity %q: token_sha256 is not a hex sha256", s.Name)
		}
		var h [sha256.Size]byte
		copy(h[:], raw)
		st := static{
			id:   protocol.Identity{Name: s.Name, Email: s.Email, Groups: slices.Clone(s.Groups)},
			hash: h,
		}
		for _, line := range s.SSHKeys {
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				return nil, fmt.Errorf("identity %q: ssh_keys: %w", s.Name, err)
			}
			st.keys = append(st.keys, k.Marshal())
		}
		d.static = append(d.static, st)
	}
	return d, nil
}

// Authenticate checks that token belongs to the identity called name. The
// work done is the same whether or not the name exists.
func (d *Directory) Authenticate(name, token string) (protocol.Identity, error) {
	if strings.HasPrefix(token, IssuedPrefix) {
		id, err := d.AuthenticateToken(token)
		if err != nil {
			return protocol.Identity{}, err // ErrUnauthenticated, saying why
		}
		if id.Name != name {
			return protocol.Identity{}, fmt.Errorf("%w: the token is not %q's", ErrUnauthenticated, name)
		}
		return id, nil
	}
	sum := sha256.Sum256([]byte(token))
	var found *static
	ok := 0
	for i := range d.static {
		nameEq := subtle.ConstantTimeCompare([]byte(d.static[i].id.Name), []byte(name))
		hashEq := subtle.ConstantTimeCompare(d.static[i].hash[:], sum[:])
		if nameEq&hashEq == 1 {
			found = &d.static[i]
			ok = 1
		}
	}
	if ok != 1 || found == nil {
		return protocol.Identity{}, ErrUnauthenticated
	}
	return cloneIdentity(found.id), nil
}

// AuthenticateToken finds the identity a token belongs to, for callers that
// present only a token (the HTTP API).
func (d *Directory) AuthenticateToken(token string) (protocol.Identity, error) {
	if strings.HasPrefix(token, IssuedPrefix) {
		if d.issued == nil {
			return protocol.Identity{}, ErrUnauthenticated
		}
		c, err := d.issued.Verify(token)
		if err != nil {
			return protocol.Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		return c.Identity(), nil
	}
	sum := sha256.Sum256([]byte(token))
	var found *static
	for i := range d.static {
		if subtle.ConstantTimeCompare(d.static[i].hash[:], sum[:]) == 1 {
			found = &d.static[i]
		}
	}
	if found == nil {
		return protocol.Identity{}, ErrUnauthenticated
	}
	return cloneIdentity(found.id), nil
}

// AuthenticateKey finds the identity an SSH public key (authorized_keys
// format) belongs to. The caller has checked that the client holds the
// private key.
func (d *Directory) AuthenticateKey(authorizedKey []byte) (protocol.Identity, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey(authorizedKey)
	if err != nil {
		return protocol.Identity{}, ErrUnauthenticated
	}
	if cert, ok := k.(*ssh.Certificate); ok {
		if d.ca == nil {
			return protocol.Identity{}, fmt.Errorf("%w: certificates are not accepted", ErrUnauthenticated)
		}
		id, err := d.ca.Check(cert)
		if err != nil {
			return protocol.Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		return id, nil
	}
	wire := k.Marshal()
	for i := range d.static {
		for _, own := range d.static[i].keys {
			if subtle.ConstantTimeCompare(own, wire) == 1 {
				return cloneIdentity(d.static[i].id), nil
			}
		}
	}
	return protocol.Identity{}, ErrUnauthenticated
}

// InAnyGroup reports whether id is a member of one of groups.
func InAnyGroup(id protocol.Identity, groups []string) bool {
	for _, g := range id.Groups {
		if slices.Contains(groups, g) {
			return true
		}
	}
	return false
}

func cloneIdentity(id protocol.Identity) protocol.Identity {
	id.Groups = slices.Clone(id.Groups)
	return id
}
