// Command gatewayd-postgres is gatewayd's PostgreSQL protocol handler as an
// external plugin: the handler gatewayd links in (plugins/protocols/postgres),
// run in its own process through go-plugin. gatewayd starts it and hands it
// each accepted client connection; run by hand, it says so and exits.
package main

import (
	"github.com/gatewayd-access/gatewayd/plugins/protocols/postgres"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

func main() {
	protocolplugin.Serve(func(cfg protocolplugin.Config) (protocol.Handler, error) {
		return postgres.New(postgres.Options{
			TLS:                    cfg.TLS,
			AllowCleartextPassword: cfg.AllowCleartextPassword,
			MaxMessageBytes:        cfg.MaxMessageBytes,
			HandshakeTimeout:       cfg.HandshakeTimeout,
			Logger:                 cfg.Logger,
		}), nil
	})
}
