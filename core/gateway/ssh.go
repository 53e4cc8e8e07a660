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
	"github.com/gatewayd-access/gatewayd/core/pluginhost"
	sshproto "github.com/gatewayd-access/gatewayd/plugins/protocols/ssh"
	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

// bindSSH starts the SSH listener with the gateway's persistent host key,
// served by the built-in handler or by the listener's protocol plugin.
func (g *Gateway) bindSSH(sc *config.SSHListener, ph *pluginhost.Host, logLevel string, log *slog.Logger) error {
	key, pemKey, err := loadOrCreateHostKey(sc.HostKeyFile)
	if err != nil {
		return err
	}
	log.Info("ssh host key", "fingerprint", gossh.FingerprintSHA256(key.PublicKey()), "file", sc.HostKeyFile)
	var h protocol.Handler
	if sc.Plugin != "" {
		p, err := ph.Lookup(sc.Plugin, plugin.KindProtocol)
		if err != nil {
			return err
		}
		h = newPluginHandler(p, protocolplugin.Config{
			HandshakeTimeout: sc.HandshakeTimeout.Duration,
			LogLevel:         logLevel,
			SSHHostKeys:      [][]byte{pemKey},
			SSHCiphers:       sc.Ciphers,
		}, log)
	} else {
		clear(pemKey)
		h, err = sshproto.New(sshproto.Options{
			HostKeys:         []gossh.Signer{key},
			HandshakeTimeout: sc.HandshakeTimeout.Duration,
			Ciphers:          sc.Ciphers,
			Logger:           log,
		})
		if err != nil {
			return err
		}
	}
	return g.bind(sshproto.ProtocolName, sc.Address, sc.MaxConnections, h)
}

// loadOrCreateHostKey reads the gateway's SSH host key, making an ed25519
// key (mode 0600) on first start, so that clients see the same key across
// restarts.
// It returns the key parsed and as the file holds it (PEM).
func loadOrCreateHostKey(path string) (gossh.Signer, []byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("making the ssh host key: %w", err)
		}
		block, err := gossh.MarshalPrivateKey(priv, "gatewayd host key")
		if err != nil {
			return nil, nil, fmt.Errorf("encoding the ssh host key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, nil, fmt.Errorf("creating the ssh host key's directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("writing the ssh host key: %w", err)
		}
		if err := pem.Encode(f, block); err != nil {
			_ = f.Close()
			return nil, nil, fmt.Errorf("writing the ssh host key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, nil, fmt.Errorf("writing the ssh host key: %w", err)
		}
		signer, err := gossh.NewSignerFromKey(priv)
		if err != nil {
			return nil, nil, fmt.Errorf("loading the ssh host key: %w", err)
		}
		return signer, pem.EncodeToMemory(block), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the ssh host key: %w", err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("the ssh host key %s is readable by group or others (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	signer, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, nil, fmt.Errorf("the ssh host key %s does not parse: %w", path, err)
	}
	return signer, data, nil
}
