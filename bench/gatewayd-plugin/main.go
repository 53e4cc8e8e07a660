// Command gatewayd-plugin is what bench/run.sh runs as its "plugin" path:
// gatewayd serve, with the PostgreSQL listener served by the external
// plugin binary (bin/gatewayd-postgres, launched through go-plugin with
// AutoMTLS and its sha256 pinned) instead of the built-in handler, through
// gateway.WithHandler. It stands in until a [[plugin]] table can put a
// protocol plugin in front of a listener.
//
//	gatewayd-plugin --config gateway.toml --plugin bin/gatewayd-postgres
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/gateway"
	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

func main() {
	os.Exit(run())
}

func run() int {
	path := flag.String("config", "gateway.toml", "configuration file")
	bin := flag.String("plugin", "bin/gatewayd-postgres", "the PostgreSQL protocol plugin binary")
	flag.Parse()
	cfg, err := config.Load(*path, config.WithSecretSchemes(slices.Sorted(maps.Keys(gateway.SecretBackends()))...))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatewayd-plugin: invalid configuration:\n%v\n", err)
		return 1
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var proc *goplugin.Client
	defer func() {
		if proc != nil {
			proc.Kill()
		}
	}()
	g, err := gateway.New(ctx, cfg, log, gateway.WithHandler("postgres", func(s gateway.HandlerSettings) (protocol.Handler, error) {
		p, c, err := launch(ctx, *bin, s, cfg.Log.Level)
		if err != nil {
			return nil, err
		}
		proc = p
		return c, nil
	}))
	if err != nil {
		log.Error("starting gatewayd", "error", err)
		return 1
	}
	log.Info("gatewayd started, postgres through the plugin", "plugin", *bin)
	if err := g.Run(ctx); err != nil {
		log.Error("gatewayd stopped with an error", "error", err)
		return 1
	}
	return 0
}

// launch starts the plugin the way gatewayd's plugin host does and
// configures it with the listener's settings.
func launch(ctx context.Context, bin string, s gateway.HandlerSettings, level string) (*goplugin.Client, *protocolplugin.Client, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(b)
	proc := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: protocolplugin.VersionedPlugins(),
		Cmd:              exec.Command(bin),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		GRPCDialOptions:  protocolplugin.DialOptions(),
		AutoMTLS:         true,
		SecureConfig:     &goplugin.SecureConfig{Checksum: sum[:], Hash: sha256.New()},
		Logger:           hclog.NewNullLogger(),
		Stderr:           os.Stderr, // the plugin's JSON log lines, as they are
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
		StartTimeout:     30 * time.Second,
	})
	rpc, err := proc.Client()
	if err != nil {
		proc.Kill()
		return nil, nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	c, err := protocolplugin.Open(ctx, rpc, protocolplugin.Config{
		TLS:                    s.TLS,
		AllowCleartextPassword: s.AllowCleartextPassword,
		MaxMessageBytes:        s.MaxMessageBytes,
		HandshakeTimeout:       s.HandshakeTimeout,
		LogLevel:               level,
	})
	if err != nil {
		proc.Kill()
		return nil, nil, err
	}
	return proc, c, nil
}
