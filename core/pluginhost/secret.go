package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// SecretBackends returns a secret.Backend for each plugin of kind "secret",
// keyed by its name, which is the scheme it serves. Each call has the
// plugin's call_timeout. A call that finds the process dead or unreachable
// has it replaced, waits for the new process (at most start_timeout) and is
// retried once. Errors name the plugin; their text from the plugin is cut
// to 512 bytes without control characters.
func (h *Host) SecretBackends() map[string]secret.Backend {
	out := make(map[string]secret.Backend)
	for _, p := range h.plugins {
		if p.cfg.Kind == plugin.KindSecret {
			out[p.cfg.Name] = &secretBackend{p: p}
		}
	}
	return out
}

// secretBackend is a secret plugin as a secret.Backend.
type secretBackend struct{ p *Plugin }

func (b *secretBackend) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	resp, dead, err := b.try(ctx, req, nil)
	if dead != nil && ctx.Err() == nil {
		b.p.log.Warn("secret plugin unreachable; retrying once on a new process", "pid", dead.pid, "error", err)
		resp, _, err = b.try(ctx, req, dead)
	}
	return resp, err
}

// try makes one call on a running process other than not. When the call
// could not reach the process it returns that instance.
func (b *secretBackend) try(ctx context.Context, req secret.ResolveRequest, not *Instance) (*secret.ResolveResponse, *Instance, error) {
	p := b.p
	wctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout.Duration)
	inst, err := p.instanceAfter(wctx, not)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("pluginhost: secret plugin %q: %w", p.cfg.Name, err)
	}
	timeout := p.cfg.CallTimeout.Duration
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := inst.raw.(secret.Backend).Resolve(cctx, req)
	switch {
	case err == nil:
		return resp, nil, nil
	case errors.Is(err, plugin.ErrUnavailable) || inst.Exited():
		p.suspect(inst)
		return nil, inst, &pluginError{plugin: p.cfg.Name, msg: sanitize(err.Error()), err: err}
	case ctx.Err() == nil && timedOut(cctx, err):
		return nil, nil, fmt.Errorf("pluginhost: secret plugin %q: %w (%v)", p.cfg.Name, ErrCallTimeout, timeout)
	}
	return nil, nil, &pluginError{plugin: p.cfg.Name, msg: sanitize(err.Error()), err: err}
}

// timedOut reports whether a call failed on its deadline: cctx's own, or
// the one gRPC passed to the plugin, which ends a moment earlier there.
func timedOut(cctx context.Context, err error) bool {
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return true
	}
	dl, ok := cctx.Deadline()
	return ok && errors.Is(err, context.DeadlineExceeded) && time.Until(dl) < 100*time.Millisecond
}

// pluginError is an error from a plugin, its text made safe to log; it
// still wraps the sentinel the plugin used (secret.ErrNotFound, ...).
type pluginError struct {
	plugin string
	msg    string
	err    error
}

func (e *pluginError) Error() string {
	return fmt.Sprintf("pluginhost: secret plugin %q: %s", e.plugin, e.msg)
}

func (e *pluginError) Unwrap() error { return e.err }

// maxErrorText bounds the text of a plugin's error.
const maxErrorText = 512

// sanitize makes a plugin's error text safe for a log line: valid UTF-8,
// no control characters, at most maxErrorText bytes.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "?") {
		if unicode.IsControl(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > maxErrorText {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

var _ secret.Backend = (*secretBackend)(nil)
