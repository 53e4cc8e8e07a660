// Command gatewayd-ssh is gatewayd's SSH protocol handler as an external
// plugin: the handler gatewayd links in (plugins/protocols/ssh), run in its
// own process through go-plugin. gatewayd starts it, gives it the
// listener's host key, and hands it each accepted client connection; run by
// hand, it says so and exits.
package main

import (
	"fmt"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/plugins/protocols/ssh"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

func main() {
	protocolplugin.Serve(func(cfg protocolplugin.Config) (protocol.Handler, error) {
		keys := make([]gossh.Signer, 0, len(cfg.SSHHostKeys))
		for i, pem := range cfg.SSHHostKeys {
			k, err := gossh.ParsePrivateKey(pem)
			clear(pem)
			if err != nil {
				return nil, fmt.Errorf("ssh host key %d: %w", i, err)
			}
			keys = append(keys, k)
		}
		return ssh.New(ssh.Options{
			HostKeys:         keys,
			Ciphers:          cfg.SSHCiphers,
			HandshakeTimeout: cfg.HandshakeTimeout,
			Logger:           cfg.Logger,
		})
	})
}
