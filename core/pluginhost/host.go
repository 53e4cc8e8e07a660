// Package pluginhost runs gatewayd's external plugins: separate binaries,
// listed in [[plugin]] tables, that it launches with hashicorp/go-plugin
// over gRPC, health-checks, and restarts with backoff when they crash.
//
// Launch safety: gRPC only, AutoMTLS, and go-plugin's SecureConfig checks
// the executable's sha256 against the configuration before it runs. The
// plugin gets PATH, HOME and its table's env, nothing else of gatewayd's
// environment. Its stderr and its JSON log lines go to gatewayd's log with
// the plugin's name.
//
// gatewayd never goes down with a plugin. A plugin whose process exits, or
// that fails a health check, is a crash: an audit event (plugin.crash), the
// OnCrash hooks, then restart attempts (plugin.restart) with exponential
// backoff. Callers get the running process's Instance and notice the crash
// through Instance.Done.
//
// For plugins of kind "secret", SecretBackends adapts each to a
// secret.Backend that the secrets resolver uses like a built-in: every call
// has the plugin's call_timeout, and a call that finds the plugin dead
// waits for its restart and is retried once.
//
// The protocol-handler side uses Host.Lookup(name, plugin.KindProtocol),
// Plugin.Instance (for Instance.Raw, the interface dispensed from its
// plugin set, and Instance.Client) and Host.OnCrash or Instance.Done to end
// the sessions a dead process was serving.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/sdk/plugin"
)

// Errors of the host, wrapped with the plugin's name and details.
var (
	ErrChecksumMismatch = errors.New("pluginhost: executable does not match its sha256")
	ErrStartTimeout     = errors.New("pluginhost: no handshake within start_timeout")
	ErrCallTimeout      = errors.New("pluginhost: no answer within call_timeout")
	ErrNotRunning       = errors.New("pluginhost: plugin not running")
	ErrClosed           = errors.New("pluginhost: host closed")
	ErrNoSuchPlugin     = errors.New("pluginhost: no such plugin")
)

// Defaults of Options.
const (
	DefaultHealthInterval = 5 * time.Second
	DefaultMaxBackoff     = 30 * time.Second
	// firstBackoff is the wait before the second restart attempt in a row;
	// the first one is immediate. Each further attempt doubles it.
	firstBackoff = 250 * time.Millisecond
	// stableAfter is how long a process must have run for its crash to
	// start the backoff over.
	stableAfter = time.Minute
)

// Auditor is where the host records plugin.start, plugin.crash and
// plugin.restart; *audit.Writer is one.
type Auditor interface {
	Append(ctx context.Context, r audit.Record) error
}

// Options configure a Host.
type Options struct {
	// Plugins are the [[plugin]] tables, checked and completed by config.
	Plugins []config.Plugin
	// Dir is the plugins' working directory: the configuration file's
	// directory, so that relative paths a plugin reads (a sops file) are
	// relative to gateway.toml like every other path in it.
	Dir string
	// Sets gives, for each plugin kind, the versioned plugin sets a plugin
	// of that kind is launched with (go-plugin's VersionedPlugins), for
	// example secretplugin.VersionedPlugins() for plugin.KindSecret. Every
	// plugin in them must be a go-plugin GRPCPlugin; the host dispenses the
	// plugin named by the kind.
	Sets map[string]map[int]goplugin.PluginSet
	// DialOptions are extra gRPC dial options per plugin kind (for example
	// protocolplugin.DialOptions(), fixed flow-control windows for the
	// protocol transport's stream of small messages). Optional.
	DialOptions map[string][]grpc.DialOption
	// Audit records the plugins' lifecycle events. May be nil.
	Audit Auditor
	// Log receives the host's logs and the plugins'. May be nil.
	Log *slog.Logger
	// HealthInterval is how often each plugin is pinged. Default 5s.
	HealthInterval time.Duration
	// MaxBackoff caps the wait between restart attempts. Default 30s.
	MaxBackoff time.Duration
}

// Host runs the configured plugins. Its methods are safe for concurrent use.
type Host struct {
	opts    Options
	log     *slog.Logger
	plugins []*Plugin
	byName  map[string]*Plugin

	closing chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu      sync.Mutex
	hooks   []func(Crash)
	closed  bool
	closeMu sync.Mutex // serialises Close
}

// Crash describes a plugin process that died or stopped answering. The
// Instance's Done channel is closed by the time hooks see it.
type Crash struct {
	Plugin   string
	Kind     string
	Instance *Instance
	// Reason is how the crash was noticed: "exited: signal: killed",
	// "health check failed: ...", "unreachable: ...".
	Reason string
}

// Start launches every plugin and waits until each has completed its
// handshake. A plugin that cannot start (missing file, sha256 mismatch, no
// handshake within its start_timeout, wrong protocol) fails Start with an
// error naming it, and the plugins already started are stopped. ctx bounds
// only the start.
func Start(ctx context.Context, opts Options) (*Host, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	h := &Host{
		opts:    opts,
		log:     opts.Log,
		byName:  make(map[string]*Plugin, len(opts.Plugins)),
		closing: make(chan struct{}),
	}
	for _, pc := range opts.Plugins {
		if _, dup := h.byName[pc.Name]; dup {
			return nil, fmt.Errorf("pluginhost: two plugins named %q", pc.Name)
		}
		if _, ok := opts.Sets[pc.Kind]; !ok {
			return nil, fmt.Errorf("pluginhost: plugin %q: gatewayd has no support for plugins of kind %q", pc.Name, pc.Kind)
		}
		p := newPlugin(h, pc)
		h.plugins = append(h.plugins, p)
		h.byName[pc.Name] = p
	}

	errs := make([]error, len(h.plugins))
	var wg sync.WaitGroup
	for i, p := range h.plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.boot(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = h.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	for _, p := range h.plugins {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			p.supervise()
		}()
	}
	return h, nil
}

// Plugins returns the plugins in configuration order.
func (h *Host) Plugins() []*Plugin { return slices.Clone(h.plugins) }

// Lookup returns the plugin called name, which must be of kind (for example
// plugin.KindProtocol); the error says what is wrong otherwise.
func (h *Host) Lookup(name, kind string) (*Plugin, error) {
	p, ok := h.byName[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w %q", ErrNoSuchPlugin, name)
	case p.cfg.Kind != kind:
		return nil, fmt.Errorf("%w %q of kind %q: it is of kind %q", ErrNoSuchPlugin, name, kind, p.cfg.Kind)
	}
	return p, nil
}

// OnCrash registers fn to be called after a plugin process has died or was
// stopped for failing a health check, before it is restarted. Hooks run one
// after the other on the plugin's supervising goroutine: return quickly (for
// example, cancel the contexts of the sessions c.Instance served).
func (h *Host) OnCrash(fn func(c Crash)) {
	h.mu.Lock()
	h.hooks = append(h.hooks, fn)
	h.mu.Unlock()
}

// crashed runs the hooks.
func (h *Host) crashed(c Crash) {
	h.mu.Lock()
	hooks := slices.Clone(h.hooks)
	h.mu.Unlock()
	for _, fn := range hooks {
		func() {
			defer func() {
				if r := recover(); r != nil {
					h.log.Error("plugin crash hook panicked", "plugin", c.Plugin, "panic", fmt.Sprint(r))
				}
			}()
			fn(c)
		}()
	}
}

// Close stops every plugin: it asks each process to exit and kills the ones
// still running when ctx ends or two seconds have passed. Calls in flight
// fail; later calls fail with ErrClosed.
func (h *Host) Close(ctx context.Context) error {
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	close(h.closing)
	// Supervisors stop and start no new process from now on. One may be in
	// the middle of a start (up to start_timeout): it stops what it started
	// itself once that returns.
	stopped := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	var wg sync.WaitGroup
	for _, p := range h.plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// audit appends r, logging a failure: a plugin's lifecycle is not held up by
// the audit log (sessions are, through their own events).
func (h *Host) audit(r audit.Record) {
	if h.opts.Audit == nil {
		return
	}
	if err := h.opts.Audit.Append(context.Background(), r); err != nil {
		h.log.Error("auditing plugin event", "kind", r.Kind, "error", err)
	}
}

// sets returns the plugin sets for kind, each plugin wrapped so that the
// host learns when the process behind the client it makes exits.
func (h *Host) sets(kind string, exited func(context.Context)) map[int]goplugin.PluginSet {
	out := make(map[int]goplugin.PluginSet)
	for v, set := range h.opts.Sets[kind] {
		ps := make(goplugin.PluginSet, len(set))
		for name, p := range set {
			if gp, ok := p.(goplugin.GRPCPlugin); ok {
				ps[name] = &watched{inner: gp, seen: exited}
			} else {
				ps[name] = p
			}
		}
		out[v] = ps
	}
	return out
}

// kindName is for messages: `secret plugin "sops"`.
func kindName(kind string) string {
	if kind == plugin.KindSecret || kind == plugin.KindProtocol {
		return kind + " plugin"
	}
	return "plugin"
}
