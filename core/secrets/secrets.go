// Package secrets resolves secret references ("env:APP_DB_PASSWORD") through
// the registered secret backends, caching each answer for a bounded time.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Errors of Resolve besides those of the backends (secret.ErrNotFound,
// secret.ErrInsecure), which it wraps.
var (
	ErrMalformed     = errors.New("secrets: malformed reference")
	ErrUnknownScheme = errors.New("secrets: unknown scheme")
)

// A reference is "scheme:rest"; the scheme is what config accepts too.
var scheme = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Resolver turns references into secret values through the backend of each
// reference's scheme. It caches each answer, per reference, for the shorter
// of its own TTL and the backend's, and collapses concurrent lookups of one
// reference into one backend call. It is safe for concurrent use.
//
// Values are never logged and never part of an error.
type Resolver struct {
	backends map[string]secret.Backend
	ttl      time.Duration
	log      *slog.Logger
	now      func() time.Time // replaced in tests

	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*call
}

type cached struct {
	value   secret.Value
	expires time.Time
}

// call is one backend lookup that several callers may wait for.
type call struct {
	done    chan struct{}
	value   secret.Value
	err     error
	waiters int
	cancel  context.CancelFunc
}

// New returns a Resolver using backends, keyed by scheme ("env", "file").
// Answers are cached for ttl, or less when a backend says so; ttl 0 turns
// caching off. log may be nil.
func New(backends map[string]secret.Backend, ttl time.Duration, log *slog.Logger) *Resolver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := make(map[string]secret.Backend, len(backends))
	for s, be := range backends {
		b[s] = be
	}
	return &Resolver{
		backends: b,
		ttl:      max(ttl, 0),
		log:      log,
		now:      time.Now,
		cache:    make(map[string]cached),
		inflight: make(map[string]*call),
	}
}

// Schemes returns the schemes that have a backend, sorted.
func (r *Resolver) Schemes() []string {
	s := make([]string, 0, len(r.backends))
	for k := range r.backends {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Resolve returns the secret that ref ("scheme:rest") names. Errors name
// the scheme and wrap the backend's error (secret.ErrNotFound,
// secret.ErrInsecure, ...); a malformed reference is not repeated, since it
// may be a secret written where a reference belongs.
//
// When ctx ends, Resolve returns at once; the backend call it shares with
// other callers goes on for them and is cancelled when none is left.
func (r *Resolver) Resolve(ctx context.Context, ref string) (secret.Value, error) {
	sch, rest, ok := strings.Cut(ref, ":")
	if !ok || !scheme.MatchString(sch) || rest == "" {
		return secret.Value{}, fmt.Errorf("%w: want \"scheme:reference\"", ErrMalformed)
	}
	backend, ok := r.backends[sch]
	if !ok {
		return secret.Value{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownScheme, sch, strings.Join(r.Schemes(), ", "))
	}

	r.mu.Lock()
	if e, ok := r.cache[ref]; ok {
		if r.now().Before(e.expires) {
			r.mu.Unlock()
			return e.value, nil
		}
		delete(r.cache, ref)
	}
	c, ok := r.inflight[ref]
	if !ok {
		// The lookup runs for every caller waiting on it, so it must not
		// end with the first caller's context.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call{done: make(chan struct{}), cancel: cancel}
		r.inflight[ref] = c
		go r.lookup(cctx, c, ref, sch, rest, backend)
	}
	c.waiters++
	r.mu.Unlock()

	select {
	case <-c.done:
		return c.value, c.err
	case <-ctx.Done():
		r.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel()
			if r.inflight[ref] == c {
				delete(r.inflight, ref)
			}
		}
		r.mu.Unlock()
		return secret.Value{}, fmt.Errorf("secrets: resolving %s reference: %w", sch, ctx.Err())
	}
}

// lookup asks the backend, caches a good answer and wakes the waiters.
func (r *Resolver) lookup(ctx context.Context, c *call, ref, sch, rest string, b secret.Backend) {
	start := r.now()
	resp, err := r.ask(ctx, b, rest)
	c.cancel()

	ttl := r.ttl
	switch {
	case err != nil:
		c.err = fmt.Errorf("secrets: resolving %s reference: %w", sch, err)
		r.log.Debug("secret lookup failed", "scheme", sch, "error", c.err)
	case resp == nil || resp.Value.IsZero():
		c.err = fmt.Errorf("secrets: resolving %s reference: backend returned no value: %w", sch, secret.ErrNotFound)
		r.log.Debug("secret lookup failed", "scheme", sch, "error", c.err)
	default:
		c.value = resp.Value
		if resp.TTL < 0 {
			ttl = 0
		} else if resp.TTL > 0 {
			ttl = min(ttl, resp.TTL)
		}
		r.log.Debug("secret resolved", "scheme", sch, "cache_ttl", ttl, "took", r.now().Sub(start))
	}

	r.mu.Lock()
	// A call Forget or every waiter gave up on is no longer current: its
	// answer goes to whoever still waits, but not into the cache.
	if r.inflight[ref] == c {
		delete(r.inflight, ref)
		if c.err == nil && ttl > 0 {
			r.cache[ref] = cached{value: c.value, expires: r.now().Add(ttl)}
		}
	}
	r.mu.Unlock()
	close(c.done)
}

// ask calls the backend, turning a panic into an error: the call runs on a
// goroutine of its own, where a panic would end the process.
func (r *Resolver) ask(ctx context.Context, b secret.Backend, rest string) (resp *secret.ResolveResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("backend panicked")
		}
	}()
	return b.Resolve(ctx, secret.ResolveRequest{Reference: rest})
}

// Forget drops the cached answer for ref, for example after the target
// refused the credential because it was rotated. A lookup of ref already
// under way still answers its callers but is not cached.
func (r *Resolver) Forget(ref string) {
	r.mu.Lock()
	delete(r.cache, ref)
	delete(r.inflight, ref)
	r.mu.Unlock()
}
