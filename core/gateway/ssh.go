package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/core/config"
	sshproto "github.com/gatewayd-access/gatewayd/plugins/protocols/ssh"
)

// bindSSH starts the SSH listener with the gateway's persistent host key.
func (g *Gateway) bindSSH(sc *config.SSHListener, log *slog.Logger) error {
	key, err := loadOrCreateHostKey(sc.HostKeyFile)
	if err != nil {
		return err
	}
	h, err := sshproto.New(sshproto.Options{
		HostKeys:         []gossh.Signer{key},
		HandshakeTimeout: sc.HandshakeTimeout.Duration,
		Ciphers:          sc.Ciphers,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	log.Info("ssh host key", "fingerprint", gossh.FingerprintSHA256(key.PublicKey()), "file", sc.HostKeyFile)
	return g.bind(sshproto.ProtocolName, sc.Address, sc.MaxConnections, h)
}

// loadOrCreateHostKey reads the gateway's SSH host key, making an ed25519
// key (mode 0600) on first start, so that clients see the same key across
// restarts.
func loadOrCreateHostKey(path string) (gossh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("making the ssh host key: %w", err)
		}
		block, err := gossh.MarshalPrivateKey(priv, "gatewayd host key")
		if err != nil {
			return nil, fmt.Errorf("encoding the ssh host key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("creating the ssh host key's directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("writing the ssh host key: %w", err)
		}
		if err := pem.Encode(f, block); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("writing the ssh host key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("writing the ssh host key: %w", err)
		}
		return gossh.NewSignerFromKey(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the ssh host key: %w", err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("the ssh host key %s is readable by group or others (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	signer, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("the ssh host key %s does not parse: %w", path, err)
	}
	return signer, nil
}
