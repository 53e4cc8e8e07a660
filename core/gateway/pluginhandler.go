package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/gatewayd-access/gatewayd/core/pluginhost"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
)

// pluginHandler serves a listener with an external protocol plugin: each
// accepted connection is handed to the running instance of the plugin,
// configured with the listener's settings once per (re)start.
type pluginHandler struct {
	p   *pluginhost.Plugin
	cfg protocolplugin.Config
	log *slog.Logger

	mu      sync.Mutex
	started *pluginhost.Instance // the instance Start was called on
	err     error
}

func newPluginHandler(p *pluginhost.Plugin, cfg protocolplugin.Config, log *slog.Logger) *pluginHandler {
	return &pluginHandler{p: p, cfg: cfg, log: log.With("plugin", p.Name())}
}

// client returns the current instance's client, started.
func (h *pluginHandler) client(ctx context.Context) (*protocolplugin.Client, error) {
	inst, err := h.p.Instance(ctx)
	if err != nil {
		return nil, err
	}
	c, ok := inst.Raw().(*protocolplugin.Client)
	if !ok {
		return nil, fmt.Errorf("plugin %s is not a protocol handler", h.p.Name())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started != inst {
		h.started, h.err = inst, c.Start(ctx, h.cfg)
		if h.err != nil {
			h.log.Error("configuring the protocol plugin", "error", h.err)
		}
	}
	return c, h.err
}

// Serve hands the connection to the plugin. When the plugin cannot take it
// the connection is closed: the plugin speaks the protocol, so the gateway
// has no protocol error to send.
func (h *pluginHandler) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	c, err := h.client(ctx)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("protocol plugin %s: %w", h.p.Name(), err)
	}
	err = c.Serve(ctx, conn, host)
	if errors.Is(err, protocolplugin.ErrPluginShutdown) {
		h.log.Warn("the plugin ended while serving a session", "error", err)
	}
	return err
}

var _ protocol.Handler = (*pluginHandler)(nil)
