// Package gateway wires gatewayd's core together: it opens the state store
// and audit log, builds the identity directory and secret resolver, starts
// the protocol listeners and the HTTP API, and shuts them down in order.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/identity"
	"github.com/gatewayd-access/gatewayd/core/metrics"
	"github.com/gatewayd-access/gatewayd/core/pluginhost"
	"github.com/gatewayd-access/gatewayd/core/policy"
	"github.com/gatewayd-access/gatewayd/core/review"
	"github.com/gatewayd-access/gatewayd/core/secrets"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/core/tlscert"
	"github.com/gatewayd-access/gatewayd/plugins/protocols/postgres"
	"github.com/gatewayd-access/gatewayd/plugins/secrets/env"
	"github.com/gatewayd-access/gatewayd/plugins/secrets/file"
	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/secret/secretplugin"
	modules "github.com/gatewayd-access/gatewayd/wasm"
)

// PluginSets returns, for each kind of external plugin gatewayd can run,
// the go-plugin sets by protocol version that such a plugin is launched
// with (see pluginhost.Options.Sets).
func PluginSets() map[string]map[int]goplugin.PluginSet {
	return map[string]map[int]goplugin.PluginSet{
		plugin.KindSecret:   secretplugin.VersionedPlugins(),
		plugin.KindProtocol: protocolplugin.VersionedPlugins(),
	}
}

// SecretBackends returns the built-in secret backends by scheme.
func SecretBackends() map[string]secret.Backend {
	return map[string]secret.Backend{
		"env":  env.New(),
		"file": file.New(),
	}
}

// Gateway is a running gatewayd.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	store   store.Store
	audit   *audit.Writer
	host    *host
	metrics *metrics.Metrics
	policy  *policy.Engine
	// reviews holds access requests and held statements; notify announces
	// them to webhooks.
	reviews *review.Service
	notify  *review.Notifier
	// plugins runs the external plugins ([[plugin]] tables).
	plugins *pluginhost.Host

	listeners []*listener
	api       *http.Server
	apiLn     net.Listener
}

// listener is one protocol listener.
type listener struct {
	protocol string
	ln       net.Listener
	handler  protocol.Handler
	slots    chan struct{}
}

// HandlerSettings are a protocol listener's settings from gateway.toml, as
// the built-in handler of the protocol gets them.
type HandlerSettings struct {
	TLS                    *tls.Config
	AllowCleartextPassword bool
	MaxMessageBytes        int
	HandshakeTimeout       time.Duration
	Logger                 *slog.Logger
}

// HandlerFunc builds the handler of a protocol listener from its settings.
type HandlerFunc func(HandlerSettings) (protocol.Handler, error)

// Option changes how New builds a gateway.
type Option func(*options)

type options struct {
	handlers map[string]HandlerFunc
}

// WithHandler serves the listener of proto (for now "postgres") with the
// handler build returns instead of the built-in one. It is the hook through
// which an external protocol-handler plugin (a protocolplugin.Client, which
// gets the same settings through protocolplugin.Config) serves a listener;
// the caller owns that handler's lifecycle.
func WithHandler(proto string, build HandlerFunc) Option {
	return func(o *options) {
		if o.handlers == nil {
			o.handlers = map[string]HandlerFunc{}
		}
		o.handlers[proto] = build
	}
}

// New prepares a gateway from a loaded configuration: it opens the store
// and the audit log and binds every listener, so that a bad address fails
// before anything is served.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (_ *Gateway, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// g stays set when an error return clears the result, so that what was
	// opened before the error is closed.
	g := &Gateway{cfg: cfg, log: log, metrics: metrics.New()}
	defer func() {
		if err != nil {
			g.closeState(context.WithoutCancel(ctx))
		}
	}()
	if err := os.MkdirAll(cfg.Gateway.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data_dir: %w", err)
	}
	dir, err := identity.NewDirectory(cfg.Identity.Static)
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(filepath.Join(cfg.Gateway.DataDir, "gatewayd.db"))
	if err != nil {
		return nil, fmt.Errorf("opening state store: %w", err)
	}
	g.store = st
	aw, err := audit.NewWriter(ctx, st, log.With("component", "audit"), audit.Options{
		FlushInterval: cfg.Audit.FlushInterval.Duration,
		MaxBatch:      cfg.Audit.MaxBatch,
		QueueSize:     cfg.Audit.QueueSize,
	})
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	g.audit = aw
	// External plugins start before anything uses them: a secret plugin's
	// scheme must resolve from the first session on.
	ph, err := pluginhost.Start(ctx, pluginhost.Options{
		Plugins: cfg.Plugin,
		Dir:     cfg.Dir(),
		Sets:    PluginSets(),
		DialOptions: map[string][]grpc.DialOption{
			plugin.KindProtocol: protocolplugin.DialOptions(),
		},
		Audit: aw,
		Log:   log.With("component", "plugins"),
	})
	if err != nil {
		return nil, err
	}
	g.plugins = ph
	backends := SecretBackends()
	for scheme, b := range ph.SecretBackends() {
		backends[scheme] = b
	}
	pe, err := policy.New(ctx, policy.Options{Config: cfg, Builtins: modules.Builtins(), Log: log.With("component", "modules")})
	if err != nil {
		return nil, err
	}
	g.policy = pe
	if len(cfg.Policy)+len(cfg.Masking) > 0 {
		// Compiling modules leaves tens of MiB of garbage behind; give it
		// back now rather than at the scavenger's pace.
		debug.FreeOSMemory()
	}
	var ttl time.Duration
	if cfg.Secrets.CacheTTL != nil {
		ttl = cfg.Secrets.CacheTTL.Duration
	}
	g.host = &host{
		cfg:      cfg,
		log:      log,
		dir:      dir,
		secrets:  secrets.New(backends, ttl, log.With("component", "secrets")),
		store:    st,
		audit:    aw,
		metrics:  g.metrics,
		policy:   pe,
		sessions: map[string]*liveSession{},
	}
	if g.notify, err = newNotifier(ctx, cfg, g.host.secrets, aw, g); err != nil {
		return nil, err
	}
	g.reviews = review.New(review.Options{Store: st, Audit: aw, Config: cfg, Notifier: g.notify, Log: log.With("component", "review"),
		Events: g.metrics.ReviewEvents})
	g.host.reviews = g.reviews

	if pc := cfg.Listen.Postgres; pc != nil {
		tc, err := tlscert.Load(pc.CertFile, pc.KeyFile, filepath.Join(cfg.Gateway.DataDir, "tls"))
		if err != nil {
			return nil, err
		}
		settings := HandlerSettings{
			TLS:                    tc,
			AllowCleartextPassword: pc.AllowCleartextPassword,
			MaxMessageBytes:        int(pc.MaxMessageBytes),
			HandshakeTimeout:       pc.HandshakeTimeout.Duration,
			Logger:                 log,
		}
		var h protocol.Handler
		if pc.Plugin != "" {
			p, err := ph.Lookup(pc.Plugin, plugin.KindProtocol)
			if err != nil {
				return nil, err
			}
			h = newPluginHandler(p, protocolplugin.Config{
				TLS:                    settings.TLS,
				AllowCleartextPassword: settings.AllowCleartextPassword,
				MaxMessageBytes:        settings.MaxMessageBytes,
				HandshakeTimeout:       settings.HandshakeTimeout,
				LogLevel:               cfg.Log.Level,
			}, log)
		} else if build := o.handlers[postgres.ProtocolName]; build != nil {
			if h, err = build(settings); err != nil {
				return nil, fmt.Errorf("building the %s handler: %w", postgres.ProtocolName, err)
			}
		} else {
			h = postgres.New(postgres.Options{
				TLS:                    settings.TLS,
				AllowCleartextPassword: settings.AllowCleartextPassword,
				MaxMessageBytes:        settings.MaxMessageBytes,
				HandshakeTimeout:       settings.HandshakeTimeout,
				Logger:                 settings.Logger,
			})
		}
		if err := g.bind(postgres.ProtocolName, pc.Address, pc.MaxConnections, h); err != nil {
			return nil, err
		}
	}
	if sc := cfg.Listen.SSH; sc != nil {
		if err := g.bindSSH(sc, ph, cfg.Log.Level, log); err != nil {
			return nil, err
		}
	}
	routes, err := g.setupLogin(ctx, dir)
	if err != nil {
		return nil, err
	}
	if ac := cfg.Listen.API; ac != nil {
		handler := api.New(api.Options{
			Routes:      routes,
			Store:       st,
			Tokens:      dir,
			AdminGroups: cfg.Gateway.AdminGroups,
			Gatherer:    g.metrics.Registry,
			Health:      aw.Healthy,
			Logger:      log.With("component", "api"),
			Recordings:  filepath.Join(cfg.Gateway.DataDir, "recordings"),
			Reviews:     g.reviews,
		})
		g.api = api.NewServer(ac.Address, handler)
		ln, err := net.Listen("tcp", ac.Address)
		if err != nil {
			return nil, fmt.Errorf("listening for the API on %s: %w", ac.Address, err)
		}
		if ac.TLS {
			tc, err := tlscert.Load(ac.CertFile, ac.KeyFile, filepath.Join(cfg.Gateway.DataDir, "tls"))
			if err != nil {
				_ = ln.Close()
				return nil, err
			}
			g.api.TLSConfig = tc
		}
		g.apiLn = ln
	}
	return g, nil
}

func (g *Gateway) bind(proto, addr string, maxConns int, h protocol.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for %s on %s: %w", proto, addr, err)
	}
	if maxConns <= 0 {
		maxConns = 1000
	}
	g.listeners = append(g.listeners, &listener{protocol: proto, ln: ln, handler: h, slots: make(chan struct{}, maxConns)})
	return nil
}

// Addr returns the bound address of a protocol's listener ("api" for the
// HTTP API), or nil.
func (g *Gateway) Addr(proto string) net.Addr {
	if proto == "api" && g.apiLn != nil {
		return g.apiLn.Addr()
	}
	for _, l := range g.listeners {
		if l.protocol == proto {
			return l.ln.Addr()
		}
	}
	return nil
}

// Run serves until ctx is done, then ends every session (each client gets
// its protocol's shutdown error), flushes the audit log and closes the
// store.
func (g *Gateway) Run(ctx context.Context) error {
	sessCtx, endSessions := context.WithCancel(context.WithoutCancel(ctx))
	defer endSessions()
	g.notify.Start(sessCtx)
	go g.reviews.Run(sessCtx, reviewInterval)
	var wg sync.WaitGroup
	for _, l := range g.listeners {
		g.log.Info("listening", "protocol", l.protocol, "address", l.ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.accept(sessCtx, l, &wg)
		}()
	}
	apiErr := make(chan error, 1)
	if g.api != nil {
		g.log.Info("listening", "protocol", "api", "address", g.apiLn.Addr().String())
		go func() {
			var err error
			if g.api.TLSConfig != nil {
				err = g.api.ServeTLS(g.apiLn, "", "")
			} else {
				err = g.api.Serve(g.apiLn)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				apiErr <- err
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-apiErr:
		g.log.Error("API server failed", "error", runErr)
	}
	g.log.Info("shutting down")
	for _, l := range g.listeners {
		_ = l.ln.Close()
	}
	endSessions()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timeout := g.cfg.Gateway.ShutdownTimeout.Duration
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	select {
	case <-done:
	case <-time.After(timeout):
		g.log.Warn("sessions still open at shutdown timeout")
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if g.api != nil {
		_ = g.api.Shutdown(sctx)
	}
	g.notify.Wait()
	g.closeState(sctx)
	return runErr
}

func (g *Gateway) accept(ctx context.Context, l *listener, wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				g.log.Warn("accept failed, retrying", "protocol", l.protocol, "error", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			g.log.Error("accept failed", "protocol", l.protocol, "error", err)
			return
		}
		backoff = 0
		select {
		case l.slots <- struct{}{}:
		default:
			g.log.Warn("connection refused: max_connections reached", "protocol", l.protocol, "client", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-l.slots }()
			defer func() {
				if r := recover(); r != nil {
					g.log.Error("protocol handler panicked; session ended", "protocol", l.protocol, "panic", fmt.Sprint(r))
					_ = c.Close()
				}
			}()
			if err := l.handler.Serve(ctx, c, g.host); err != nil {
				g.log.Warn("session failed", "protocol", l.protocol, "error", err)
			}
		}()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (g *Gateway) closeState(ctx context.Context) {
	for _, l := range g.listeners {
		_ = l.ln.Close()
	}
	if g.apiLn != nil {
		_ = g.apiLn.Close()
	}
	if g.policy != nil {
		if err := g.policy.Close(ctx); err != nil {
			g.log.Error("closing module runtime", "error", err)
		}
	}
	if g.plugins != nil {
		// Before the audit log: stopping a plugin is not a crash, but a
		// crash noticed until now is still recorded.
		_ = g.plugins.Close(ctx)
	}
	if g.audit != nil {
		if err := g.audit.Close(ctx); err != nil {
			g.log.Error("closing audit log", "error", err)
		}
	}
	if g.store != nil {
		if err := g.store.Close(); err != nil {
			g.log.Error("closing state store", "error", err)
		}
	}
}
