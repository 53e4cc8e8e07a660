package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/identity/login"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
)

// Key files of OIDC login, under data_dir.
const (
	tokenKeyFile = "identity/token_ed25519.key"
	userCAFile   = "identity/ssh_user_ca_ed25519.key"
)

// setupLogin prepares sign-in through the identity provider when
// [identity.oidc] is configured: the token signing key and the SSH user CA
// (made in data_dir on first start), the directory's acceptance of what
// they issue, and the API routes of the login flows. Without
// [identity.oidc] it does nothing.
func (g *Gateway) setupLogin(ctx context.Context, dir *identity.Directory) (map[string]http.Handler, error) {
	oc := g.cfg.Identity.OIDC
	if oc == nil {
		return nil, nil
	}
	var revocations identity.Revocations
	if st, ok := g.store.(*sqlite.Store); ok {
		revocations = st
	}
	tokens, err := identity.OpenTokens(filepath.Join(g.cfg.Gateway.DataDir, tokenKeyFile), revocations)
	if err != nil {
		return nil, err
	}
	ca, err := identity.OpenUserCA(filepath.Join(g.cfg.Gateway.DataDir, userCAFile), tokens)
	if err != nil {
		return nil, err
	}
	dir.UseIssued(tokens, ca)
	secret, err := g.host.secrets.Resolve(ctx, oc.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("resolving identity.oidc.client_secret: %w", err)
	}
	listeners := map[string]int{}
	for _, l := range g.listeners {
		if _, p, err := net.SplitHostPort(l.ln.Addr().String()); err == nil {
			listeners[l.protocol], _ = strconv.Atoi(p)
		}
	}
	hostKey := ""
	if sc := g.cfg.Listen.SSH; sc != nil {
		// bindSSH made or read it already.
		k, pemKey, err := loadOrCreateHostKey(sc.HostKeyFile)
		if err != nil {
			return nil, err
		}
		clear(pemKey)
		hostKey = strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k.PublicKey())))
	}
	svc, err := login.New(login.Options{
		SSHHostKey:   hostKey,
		Context:      ctx,
		Registerer:   g.metrics.Registry,
		Config:       *oc,
		ClientSecret: strings.TrimSpace(secret.Reveal()),
		Directory:    dir,
		Tokens:       tokens,
		CA:           ca,
		Audit:        g.audit,
		Connections:  g.cfg.Connection,
		Listeners:    listeners,
		Logger:       g.log.With("component", "login"),
	})
	if err != nil {
		return nil, err
	}
	g.log.Info("OIDC login enabled", "issuer", oc.Issuer, "ssh_user_ca", ca.PublicKey())
	return svc.Routes(), nil
}

var _ identity.Revocations = (*sqlite.Store)(nil)
