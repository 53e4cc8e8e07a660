package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/gatewayd-access/gatewayd/core/gateway"
	"github.com/gatewayd-access/gatewayd/internal/plugintest"
	gwplugin "github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

// The integration tests run the handler in one of two ways, and assert the
// same things either way:
//
//	go test ./plugins/protocols/postgres/                                   built in
//	GATEWAYD_TEST_POSTGRES_PLUGIN=1 go test ./plugins/protocols/postgres/   the external plugin
//
// In the second mode every gateway the tests start serves its PostgreSQL
// listener through cmd/gatewayd-postgres, launched with go-plugin (gRPC,
// AutoMTLS, its sha256 pinned) and given the listener's settings, and the
// plugin's log lines join the gateway's. "1" builds the binary from this
// tree; any other value is the path of a built one. The tests of
// plugin_test.go use the external plugin in both modes.
const pluginEnv = "GATEWAYD_TEST_POSTGRES_PLUGIN"

// pluginBuild is the plugin binary, built at most once per test binary.
var pluginBuild = plugintest.Binary{
	Env:  pluginEnv,
	Pkg:  "github.com/gatewayd-access/gatewayd/cmd/gatewayd-postgres",
	Name: "gatewayd-postgres",
}

func externalMode() bool { return pluginBuild.Enabled() }

// pluginBinary returns the plugin's path and sha256, in either mode.
func pluginBinary(t testing.TB) (string, []byte) {
	t.Helper()
	path, sum, err := pluginBuild.Get()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(sum)
	if err != nil {
		t.Fatal(err)
	}
	return path, raw
}

func removePluginBuild() { pluginBuild.Cleanup() }

// handlerOptions are the gateway options of a mode: none for the built-in
// handler; for the external one, gateway.WithHandler with a function that
// launches the plugin. The returned pointer is set to the plugin once
// gateway.New has called that function.
func handlerOptions(t testing.TB, external bool, logs io.Writer) ([]gateway.Option, **pluginHandler) {
	var ph *pluginHandler
	if !external {
		return nil, &ph
	}
	return []gateway.Option{gateway.WithHandler("postgres", func(s gateway.HandlerSettings) (protocol.Handler, error) {
		p := &pluginHandler{t: t, logs: logs, cfg: protocolplugin.Config{
			TLS:                    s.TLS,
			AllowCleartextPassword: s.AllowCleartextPassword,
			MaxMessageBytes:        s.MaxMessageBytes,
			HandshakeTimeout:       s.HandshakeTimeout,
			LogLevel:               "debug",
		}}
		if err := p.launch(); err != nil {
			return nil, err
		}
		t.Cleanup(p.stop)
		ph = p
		return p, nil
	})}, &ph
}

// pluginHandler serves a listener through the running process of the
// external plugin, and restarts it on demand: the part of gatewayd's plugin
// host that these tests need.
type pluginHandler struct {
	t    testing.TB
	logs io.Writer
	cfg  protocolplugin.Config

	mu     sync.Mutex
	proc   *plugin.Client
	client *protocolplugin.Client
}

func (p *pluginHandler) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	p.mu.Lock()
	c := p.client
	p.mu.Unlock()
	return c.Serve(ctx, conn, host)
}

// launch starts a plugin process and makes it the one that serves.
func (p *pluginHandler) launch() error {
	bin, sum := pluginBinary(p.t)
	proc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  gwplugin.Handshake,
		VersionedPlugins: protocolplugin.VersionedPlugins(),
		Cmd:              exec.Command(bin),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  protocolplugin.DialOptions(),
		AutoMTLS:         true,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		Logger:           hclog.NewNullLogger(),
		Stderr:           p.logs,
		StartTimeout:     30 * time.Second,
	})
	rpc, err := proc.Client()
	if err != nil {
		proc.Kill()
		return fmt.Errorf("starting the postgres plugin: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := protocolplugin.Open(ctx, rpc, p.cfg)
	if err != nil {
		proc.Kill()
		return err
	}
	p.mu.Lock()
	old := p.proc
	p.proc, p.client = proc, c
	p.mu.Unlock()
	if old != nil {
		old.Kill()
	}
	return nil
}

// restart replaces the plugin process, as gatewayd's plugin host does
// after a crash.
func (p *pluginHandler) restart() {
	p.t.Helper()
	if err := p.launch(); err != nil {
		p.t.Fatal(err)
	}
}

// pid is the plugin process's id.
func (p *pluginHandler) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc.ReattachConfig().Pid
}

func (p *pluginHandler) stop() {
	p.mu.Lock()
	proc, c := p.proc, p.client
	p.mu.Unlock()
	_ = c.Close()
	proc.Kill()
}

var _ protocol.Handler = (*pluginHandler)(nil)
