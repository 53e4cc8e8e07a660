package pluginhost

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Plugin is one configured plugin. Its process comes and goes (crashes,
// restarts); Instance returns the one running now.
type Plugin struct {
	h   *Host
	cfg config.Plugin
	log *slog.Logger

	mu      sync.Mutex
	cur     *Instance     // nil while the plugin is being restarted
	changed chan struct{} // closed and replaced whenever cur changes
	stopped bool
	// suspected is an instance a caller could not reach; poke wakes the
	// supervisor to deal with it.
	suspected *Instance
	poke      chan struct{}
}

func newPlugin(h *Host, cfg config.Plugin) *Plugin {
	return &Plugin{
		h:       h,
		cfg:     cfg,
		log:     h.log.With("plugin", cfg.Name, "kind", cfg.Kind),
		changed: make(chan struct{}),
		poke:    make(chan struct{}, 1),
	}
}

// Name is the plugin's name in gateway.toml.
func (p *Plugin) Name() string { return p.cfg.Name }

// Kind is plugin.KindSecret or plugin.KindProtocol.
func (p *Plugin) Kind() string { return p.cfg.Kind }

// CallTimeout is the plugin's call_timeout: the longest a single call into
// it should take.
func (p *Plugin) CallTimeout() time.Duration { return p.cfg.CallTimeout.Duration }

// Instance returns the running process of the plugin. While the plugin is
// being restarted after a crash it waits for the new process, until ctx
// ends. After Host.Close it fails with ErrClosed.
func (p *Plugin) Instance(ctx context.Context) (*Instance, error) {
	return p.instanceAfter(ctx, nil)
}

// instanceAfter is Instance, but never returns not.
func (p *Plugin) instanceAfter(ctx context.Context, not *Instance) (*Instance, error) {
	for {
		p.mu.Lock()
		cur, changed, stopped := p.cur, p.changed, p.stopped
		p.mu.Unlock()
		if stopped {
			return nil, ErrClosed
		}
		if cur != nil && cur != not && !cur.Exited() {
			return cur, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %s %q is being restarted: %w", ErrNotRunning, kindName(p.cfg.Kind), p.cfg.Name, ctx.Err())
		}
	}
}

// setCurrent makes inst the running instance and wakes the waiters. It
// returns false, having changed nothing, once the plugin is stopped.
func (p *Plugin) setCurrent(inst *Instance) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.cur = inst
	close(p.changed)
	p.changed = make(chan struct{})
	return true
}

// current returns the running instance, nil while restarting.
func (p *Plugin) current() *Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// suspect tells the supervisor that a call could not reach inst.
func (p *Plugin) suspect(inst *Instance) {
	p.mu.Lock()
	p.suspected = inst
	p.mu.Unlock()
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// Instance is one process of a plugin.
type Instance struct {
	client  *goplugin.Client
	conn    *grpc.ClientConn
	raw     any
	done    <-chan struct{}
	cmd     *exec.Cmd
	pid     int
	version int
	started time.Time
}

// Client is go-plugin's client of the process, for what Raw does not cover
// (its ReattachConfig, for example). Do not Kill it: the host owns it.
func (i *Instance) Client() *goplugin.Client { return i.client }

// Raw is what was dispensed from the plugin set of the plugin's kind: a
// secret.Backend for plugin.KindSecret; for plugin.KindProtocol whatever
// that kind's GRPCPlugin.GRPCClient returns.
func (i *Instance) Raw() any { return i.raw }

// Done is closed when the process has exited, whatever the reason.
func (i *Instance) Done() <-chan struct{} { return i.done }

// Exited reports whether the process has exited.
func (i *Instance) Exited() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// PID is the process id.
func (i *Instance) PID() int { return i.pid }

// Version is the plugin protocol version negotiated with the process.
func (i *Instance) Version() int { return i.version }

// Started is when the process completed its handshake.
func (i *Instance) Started() time.Time { return i.started }

// exitStatus describes how the process ended; call it after Done.
func (i *Instance) exitStatus() string {
	if ps := i.cmd.ProcessState; ps != nil {
		return ps.String()
	}
	return "exited"
}

// ping runs the gRPC health check go-plugin serves in every plugin.
func (i *Instance) ping(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(i.conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: goplugin.GRPCServiceName})
	return err
}

// kill ends the process with SIGKILL, without a graceful shutdown.
func (i *Instance) kill() {
	if i.cmd.Process != nil {
		_ = i.cmd.Process.Kill() // a pidfd on Linux: never another process
	}
}

// close asks the process to exit, kills it if it has not within the grace
// period or when ctx ends, and releases go-plugin's resources.
func (i *Instance) close(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		i.client.Kill() // graceful shutdown, SIGKILL after 2s
		close(done)
	}()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-ctx.Done():
	case <-t.C:
	}
	// A stopped (SIGSTOP) process never answers the shutdown call that
	// Kill waits for; its exit does.
	i.kill()
	<-done
}

// boot starts the plugin's first process.
func (p *Plugin) boot(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pluginhost: starting %s %q: %w", kindName(p.cfg.Kind), p.cfg.Name, err)
	}
	start := time.Now()
	inst, err := p.launch()
	if err != nil {
		p.log.Error("plugin did not start", "error", err)
		return err
	}
	took := time.Since(start)
	p.setCurrent(inst)
	p.log.Info("plugin started", "pid", inst.pid, "version", inst.version, "took", took)
	p.h.audit(audit.Record{Kind: audit.KindPluginStart, Data: audit.PluginStartData{
		Plugin: p.cfg.Name, Kind: p.cfg.Kind, Path: p.cfg.Path, SHA256: p.cfg.SHA256,
		PID: inst.pid, Version: inst.version, Took: int64(took),
	}})
	return nil
}

// stop ends the plugin for good.
func (p *Plugin) stop(ctx context.Context) {
	p.mu.Lock()
	p.stopped = true
	inst := p.cur
	p.cur = nil
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	if inst != nil {
		inst.close(ctx)
		p.log.Info("plugin stopped", "pid", inst.pid)
	}
}

// launch starts a process of the plugin and completes the handshake.
func (p *Plugin) launch() (*Instance, error) {
	name := fmt.Sprintf("%s %q (%s)", kindName(p.cfg.Kind), p.cfg.Name, p.cfg.Path)
	sum, err := hex.DecodeString(p.cfg.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("pluginhost: starting %s: sha256 is not 64 hexadecimal digits", name)
	}
	cmd := exec.Command(p.cfg.Path, p.cfg.Args...)
	cmd.Dir = p.h.opts.Dir
	cmd.Env = p.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)

	exited := make(chan context.Context, 1)
	logger := newHCLogger(p.log, p.cfg.Path)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: plugin.Handshake,
		VersionedPlugins: p.h.sets(p.cfg.Kind, func(ctx context.Context) {
			select {
			case exited <- ctx:
			default:
			}
		}),
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     p.cfg.StartTimeout.Duration,
		Logger:           logger,
		SyncStdout:       newLineLogger(p.log, "stdout"),
		SyncStderr:       newLineLogger(p.log, "stderr"),
		GRPCDialOptions:  p.h.opts.DialOptions[p.cfg.Kind],
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, p.startError(name, cmd, err)
	}
	fail := func(format string, args ...any) (*Instance, error) {
		client.Kill()
		return nil, fmt.Errorf("pluginhost: starting %s: "+format, append([]any{name}, args...)...)
	}
	gc, ok := rpc.(*goplugin.GRPCClient)
	if !ok {
		return fail("not a gRPC plugin")
	}
	raw, err := rpc.Dispense(p.cfg.Kind)
	if err != nil {
		return fail("dispensing %q: %v", p.cfg.Kind, err)
	}
	var done <-chan struct{}
	select {
	case ctx := <-exited:
		done = ctx.Done()
	default:
		return fail("the %q plugin of the plugin set is not a gRPC plugin", p.cfg.Kind)
	}
	if p.cfg.Kind == plugin.KindSecret {
		if _, ok := raw.(secret.Backend); !ok {
			return fail("dispensed %T, not a secret.Backend", raw)
		}
	}
	return &Instance{
		client:  client,
		conn:    gc.Conn,
		raw:     raw,
		done:    done,
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		version: client.NegotiatedVersion(),
		started: time.Now(),
	}, nil
}

// startError explains why go-plugin could not start the plugin. The
// client has been killed, so the process has been waited for.
func (p *Plugin) startError(name string, cmd *exec.Cmd, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("pluginhost: starting %s: %w: the file's sha256 is %s, the [[plugin]] table's is %s; refusing to run it",
			name, ErrChecksumMismatch, fileSHA256(p.cfg.Path), p.cfg.SHA256)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("pluginhost: starting %s: %w (%v); the process was killed", name, ErrStartTimeout, p.cfg.StartTimeout)
	case strings.Contains(msg, "plugin exited before we could connect"),
		strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		status := "it exited"
		if ps := cmd.ProcessState; ps != nil {
			status = ps.String()
		}
		return fmt.Errorf("pluginhost: starting %s: the process ended before its handshake (%s); its stderr is in the log", name, status)
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		return fmt.Errorf("pluginhost: starting %s: not a gatewayd plugin: its first line of output is not a go-plugin handshake", name)
	}
	first, _, _ := strings.Cut(msg, "\n")
	return fmt.Errorf("pluginhost: starting %s: %s", name, first)
}

// fileSHA256 returns the hex sha256 of the file at path, for messages.
func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, bufio.NewReader(f)); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return hex.EncodeToString(h.Sum(nil))
}

// env is the plugin process's environment, before go-plugin adds its
// handshake variables: PATH and HOME from gatewayd's, then the table's env.
func (p *Plugin) env() []string {
	env := make(map[string]string, len(p.cfg.Env)+2)
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	maps.Copy(env, p.cfg.Env)
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// supervise watches the running process and replaces it when it dies, fails
// a health check or cannot be reached, until the host closes.
func (p *Plugin) supervise() {
	ticker := time.NewTicker(p.h.opts.HealthInterval)
	defer ticker.Stop()
	attempt := 0 // restart attempts since the last stable run
	for {
		inst := p.current()
		if inst == nil {
			return // stopped
		}
		var reason string
		select {
		case <-p.h.closing:
			return
		case <-inst.done:
			reason = "exited: " + inst.exitStatus()
		case <-ticker.C:
			err := inst.ping(p.cfg.CallTimeout.Duration)
			if err == nil {
				continue
			}
			if inst.Exited() {
				reason = "exited: " + inst.exitStatus()
				break
			}
			reason = "health check failed: " + err.Error()
			inst.kill()
		case <-p.poke:
			p.mu.Lock()
			s := p.suspected
			p.suspected = nil
			p.mu.Unlock()
			if s != inst {
				continue
			}
			// A call failed because the process is gone, usually: wait a
			// moment for its exit to be noticed, else stop it, since the
			// host cannot reach it.
			select {
			case <-inst.done:
				reason = "exited: " + inst.exitStatus()
			case <-time.After(200 * time.Millisecond):
				reason = "unreachable: a call could not reach the process"
				inst.kill()
			}
		}
		uptime := time.Since(inst.started)
		if uptime >= stableAfter {
			attempt = 0
		}
		if !p.setCurrent(nil) {
			return
		}
		p.log.Error("plugin crashed", "pid", inst.pid, "reason", reason, "uptime", uptime)
		p.h.audit(audit.Record{Kind: audit.KindPluginCrash, Data: audit.PluginCrashData{
			Plugin: p.cfg.Name, Kind: p.cfg.Kind, PID: inst.pid, Reason: reason, Uptime: int64(uptime),
		}})
		inst.close(context.Background())
		p.h.crashed(Crash{Plugin: p.cfg.Name, Kind: p.cfg.Kind, Instance: inst, Reason: reason})
		if !p.restart(&attempt) {
			return
		}
	}
}

// restart starts the plugin again, waiting longer before each attempt that
// follows a failure, until it runs or the host closes (false).
func (p *Plugin) restart(attempt *int) bool {
	for {
		*attempt++
		backoff := p.backoff(*attempt)
		if backoff > 0 {
			p.log.Info("restarting plugin after backoff", "attempt", *attempt, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-p.h.closing:
				t.Stop()
				return false
			case <-t.C:
			}
		}
		select {
		case <-p.h.closing:
			return false
		default:
		}
		inst, err := p.launch()
		data := audit.PluginRestartData{Plugin: p.cfg.Name, Kind: p.cfg.Kind, Attempt: *attempt, Backoff: int64(backoff), Outcome: "ok"}
		if err != nil {
			data.Outcome, data.Error = "failed", err.Error()
			p.h.audit(audit.Record{Kind: audit.KindPluginRestart, Data: data})
			p.log.Error("restarting plugin failed", "attempt", *attempt, "error", err)
			continue
		}
		data.PID = inst.pid
		p.h.audit(audit.Record{Kind: audit.KindPluginRestart, Data: data})
		if !p.setCurrent(inst) {
			inst.close(context.Background())
			return false
		}
		p.log.Info("plugin restarted", "pid", inst.pid, "attempt", *attempt)
		return true
	}
}

// backoff is the wait before restart attempt n (1-based): none for the
// first, then 250ms doubling up to MaxBackoff.
func (p *Plugin) backoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := firstBackoff
	for i := 2; i < n && d < p.h.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.h.opts.MaxBackoff)
}

// watched wraps a plugin of a plugin set so that the host gets the context
// go-plugin ends when the process exits.
type watched struct {
	goplugin.NetRPCUnsupportedPlugin
	inner goplugin.GRPCPlugin
	seen  func(context.Context)
}

func (w *watched) GRPCServer(b *goplugin.GRPCBroker, s *grpc.Server) error {
	return w.inner.GRPCServer(b, s)
}

func (w *watched) GRPCClient(ctx context.Context, b *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	w.seen(ctx)
	return w.inner.GRPCClient(ctx, b, c)
}

var _ goplugin.GRPCPlugin = (*watched)(nil)
