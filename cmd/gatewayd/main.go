// Command gatewayd is the access gateway daemon: it reads gateway.toml and
// serves the configured listeners until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/gateway"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: gatewayd <command> [flags]

commands:
  serve  --config FILE   run the gateway (default config: gateway.toml)
  check  --config FILE   validate the configuration and exit
  version                print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve", "check":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "gateway.toml", "configuration file")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		cfg, err := config.Load(*path, config.WithSecretSchemes(slices.Sorted(maps.Keys(gateway.SecretBackends()))...))
		if err != nil {
			fmt.Fprintf(stderr, "gatewayd: invalid configuration:\n%v\n", err)
			return 1
		}
		if args[0] == "check" {
			fmt.Fprintf(stderr, "%s: configuration OK\n", *path)
			return 0
		}
		return serve(cfg, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(os.Stdout, "gatewayd", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(os.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gatewayd: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

func serve(cfg *config.Config, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		log.Error("starting gatewayd", "config", cfg.Path, "error", err)
		return 1
	}
	log.Info("gatewayd started", "version", version, "config", cfg.Path, "data_dir", cfg.Gateway.DataDir)
	if err := g.Run(ctx); err != nil {
		log.Error("gatewayd stopped with an error", "error", err)
		return 1
	}
	log.Info("gatewayd stopped")
	return 0
}
