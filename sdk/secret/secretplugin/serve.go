// Package secretplugin runs a secret.Backend as an external gatewayd plugin
// (a separate binary gatewayd launches through hashicorp/go-plugin over
// gRPC), and gives gatewayd's plugin host the client side of the same
// contract.
//
// A plugin author writes a secret.Backend and calls Serve from main:
//
//	func main() { secretplugin.Serve(mybackend.New()) }
//
// The gRPC protocol (gatewayd.secrets.v1) and its shims are internal: the
// contract is the Go interface secret.Backend on both sides. See
// sdk/PLUGINS.md for the whole story.
//
// Package secret itself does not import this package, so importing the
// contract does not pull in gRPC.
package secretplugin

import (
	"log/slog"
	"os"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Serve serves impl to the gatewayd that started this process, until
// gatewayd closes the plugin. Call it from main and do nothing after it.
//
// Before serving it makes slog's default logger write JSON lines to the
// process's stderr, which gatewayd logs at their level with the plugin's
// name; use slog for diagnostics and never log a secret. Run by hand rather
// than by gatewayd, the binary says it is a plugin and exits with status 1.
func Serve(impl secret.Backend) {
	if impl == nil {
		panic("secretplugin: Serve(nil)")
	}
	// go-plugin points os.Stderr elsewhere once it serves; keep the real one.
	stderr := os.Stderr
	slog.SetDefault(slog.New(plugin.NewLogHandler(stderr, slog.LevelDebug)))
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: pluginSets(impl),
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Output:     stderr,
			JSONFormat: true,
			Level:      hclog.Info,
		}),
	})
}

// VersionedPlugins returns the plugin sets of the secret kind by protocol
// version, as go-plugin's ClientConfig.VersionedPlugins wants them: what
// gatewayd's plugin host launches a plugin of kind "secret" with. Dispensing
// plugin.KindSecret from the resulting client gives a secret.Backend whose
// calls go to the plugin process; once that process is gone they fail with
// an error wrapping plugin.ErrUnavailable.
func VersionedPlugins() map[int]goplugin.PluginSet { return pluginSets(nil) }

// pluginSets is VersionedPlugins with the implementation a server serves.
func pluginSets(impl secret.Backend) map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{
		1: {plugin.KindSecret: &grpcPluginV1{impl: impl}},
	}
}
