package protocolplugin_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

// greeter is the smallest handler: TLS if configured, one line, done.
type greeter struct{ cfg protocolplugin.Config }

func (g *greeter) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	defer conn.Close()
	c := conn
	if g.cfg.TLS != nil {
		c = tls.Server(conn, g.cfg.TLS)
	}
	g.cfg.Logger.Info("client connected", "client", conn.RemoteAddr().String())
	_, err := io.WriteString(c, "hello from a gatewayd plugin\n")
	return err
}

// A plugin binary's main: the handler is built from what gatewayd sends
// when it starts the plugin.
func ExampleServe() {
	protocolplugin.Serve(func(cfg protocolplugin.Config) (protocol.Handler, error) {
		return &greeter{cfg: cfg}, nil
	})
}
