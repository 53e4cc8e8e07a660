package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/plugins/secrets/env"
	"github.com/gatewayd-access/gatewayd/plugins/secrets/file"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

const value = "s3cret-Value-42"

// fake is a backend that counts its calls and answers from a map. If gate
// is set, each call waits for it (or for its context).
type fake struct {
	calls   atomic.Int32
	values  map[string]string
	ttl     time.Duration
	err     error
	gate    chan struct{}
	started chan struct{}
	ctxErr  chan error
	panics  bool
}

func (f *fake) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	f.calls.Add(1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			if f.ctxErr != nil {
				f.ctxErr <- ctx.Err()
			}
			return nil, ctx.Err()
		}
	}
	if f.panics {
		panic("backend bug: " + value)
	}
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.values[req.Reference]
	if !ok {
		return nil, fmt.Errorf("fake: no %q: %w", req.Reference, secret.ErrNotFound)
	}
	return &secret.ResolveResponse{Value: secret.NewValue([]byte(v)), TTL: f.ttl}, nil
}

var _ secret.Backend = (*fake)(nil)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(b secret.Backend, ttl time.Duration) (*Resolver, *clock) {
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := New(map[string]secret.Backend{"fake": b}, ttl, nil)
	r.now = clk.now
	return r, clk
}

func TestCache(t *testing.T) {
	type step struct {
		advance   time.Duration
		wantCalls int32
	}
	tests := []struct {
		name       string
		ttl        time.Duration
		backendTTL time.Duration
		steps      []step
	}{
		{"hit within ttl", 30 * time.Second, 0, []step{{0, 1}, {10 * time.Second, 1}, {19 * time.Second, 1}}},
		{"expiry at ttl", 30 * time.Second, 0, []step{{0, 1}, {30 * time.Second, 2}, {29 * time.Second, 2}, {time.Second, 3}}},
		{"ttl 0 caches nothing", 0, time.Hour, []step{{0, 1}, {0, 2}, {0, 3}}},
		{"shorter backend ttl wins", 30 * time.Second, 5 * time.Second, []step{{0, 1}, {4 * time.Second, 1}, {time.Second, 2}}},
		{"longer backend ttl ignored", 5 * time.Second, time.Hour, []step{{0, 1}, {4 * time.Second, 1}, {time.Second, 2}}},
		{"negative backend ttl: no caching", 30 * time.Second, -1, []step{{0, 1}, {0, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{values: map[string]string{"pg": value}, ttl: tt.backendTTL}
			r, clk := newTest(f, tt.ttl)
			for i, s := range tt.steps {
				clk.advance(s.advance)
				v, err := r.Resolve(context.Background(), "fake:pg")
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if v.Reveal() != value {
					t.Fatalf("step %d: wrong value", i)
				}
				if got := f.calls.Load(); got != s.wantCalls {
					t.Errorf("step %d: backend calls = %d, want %d", i, got, s.wantCalls)
				}
			}
		})
	}
}

func TestCachePerReference(t *testing.T) {
	f := &fake{values: map[string]string{"a": "1", "b": "2"}}
	r, _ := newTest(f, time.Minute)
	for _, ref := range []string{"fake:a", "fake:b", "fake:a", "fake:b"} {
		v, err := r.Resolve(context.Background(), ref)
		if err != nil || v.Reveal() != map[string]string{"fake:a": "1", "fake:b": "2"}[ref] {
			t.Fatalf("%s: %v, %v", ref, v.Reveal(), err)
		}
	}
	if f.calls.Load() != 2 {
		t.Errorf("calls = %d, want 2", f.calls.Load())
	}
}

func TestErrorsNotCached(t *testing.T) {
	f := &fake{values: map[string]string{}}
	r, _ := newTest(f, time.Minute)
	for range 2 {
		if _, err := r.Resolve(context.Background(), "fake:pg"); !errors.Is(err, secret.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	}
	if f.calls.Load() != 2 {
		t.Errorf("calls = %d, want 2", f.calls.Load())
	}
}

func TestForget(t *testing.T) {
	f := &fake{values: map[string]string{"pg": value}}
	r, _ := newTest(f, time.Minute)
	ctx := context.Background()
	r.Resolve(ctx, "fake:pg")
	r.Forget("fake:pg")
	r.Resolve(ctx, "fake:pg")
	if f.calls.Load() != 2 {
		t.Errorf("calls = %d, want 2", f.calls.Load())
	}
}

func TestErrors(t *testing.T) {
	backendErr := fmt.Errorf("vaultish: permission denied on path kv/app")
	r := New(map[string]secret.Backend{
		"fake": &fake{values: map[string]string{"empty": ""}},
		"bad":  &fake{err: backendErr},
		"nil":  nilBackend{},
	}, time.Minute, nil)
	tests := []struct {
		ref     string
		wantIs  error
		wantMsg string
	}{
		{value, ErrMalformed, `secrets: malformed reference: want "scheme:reference"`},
		{"Hunter2:" + value, ErrMalformed, `secrets: malformed reference: want "scheme:reference"`},
		{"fake:", ErrMalformed, `secrets: malformed reference: want "scheme:reference"`},
		{"vault:kv/app", ErrUnknownScheme, `secrets: unknown scheme "vault" (known: bad, fake, nil)`},
		{"fake:missing", secret.ErrNotFound, `secrets: resolving fake reference: fake: no "missing": secret: not found`},
		{"fake:empty", secret.ErrNotFound, `secrets: resolving fake reference: backend returned no value: secret: not found`},
		{"nil:x", secret.ErrNotFound, `secrets: resolving nil reference: backend returned no value: secret: not found`},
		{"bad:x", backendErr, `secrets: resolving bad reference: vaultish: permission denied on path kv/app`},
	}
	for _, tt := range tests {
		t.Run(tt.wantMsg, func(t *testing.T) {
			_, err := r.Resolve(context.Background(), tt.ref)
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if err == nil || err.Error() != tt.wantMsg {
				t.Errorf("err = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

type nilBackend struct{}

func (nilBackend) Resolve(context.Context, secret.ResolveRequest) (*secret.ResolveResponse, error) {
	return nil, nil
}

func TestPanickingBackend(t *testing.T) {
	r, _ := newTest(&fake{panics: true}, time.Minute)
	_, err := r.Resolve(context.Background(), "fake:pg")
	if err == nil || !strings.Contains(err.Error(), "backend panicked") {
		t.Fatalf("err = %v, want a panic turned into an error", err)
	}
	if strings.Contains(err.Error(), value) {
		t.Errorf("error repeats the panic value: %v", err)
	}
}

// TestConcurrentLookupsCollapse starts many lookups of one reference while
// the backend is blocked and checks that the backend ran once.
func TestConcurrentLookupsCollapse(t *testing.T) {
	f := &fake{values: map[string]string{"pg": value}, gate: make(chan struct{}), started: make(chan struct{}, 100)}
	r, _ := newTest(f, 0) // no cache: only the collapsing saves calls
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := r.Resolve(context.Background(), "fake:pg")
			if err == nil && v.Reveal() != value {
				err = errors.New("wrong value")
			}
			errs <- err
		}()
	}
	<-f.started
	// Wait until every caller is queued on the one call.
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		c := r.inflight["fake:pg"]
		return c != nil && c.waiters == n
	})
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := f.calls.Load(); got != 1 {
		t.Errorf("backend calls = %d, want 1", got)
	}
}

// TestCallerCancel checks that one caller giving up neither fails the
// others nor cancels the shared lookup, and that the lookup is cancelled
// when every caller has given up.
func TestCallerCancel(t *testing.T) {
	f := &fake{values: map[string]string{"pg": value}, gate: make(chan struct{}), started: make(chan struct{}, 10), ctxErr: make(chan error, 1)}
	r, _ := newTest(f, time.Minute)

	ctx1, cancel1 := context.WithCancel(context.Background())
	res1 := make(chan error, 1)
	go func() { _, err := r.Resolve(ctx1, "fake:pg"); res1 <- err }()
	<-f.started
	res2 := make(chan error, 1)
	go func() { _, err := r.Resolve(context.Background(), "fake:pg"); res2 <- err }()
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.inflight["fake:pg"].waiters == 2
	})

	cancel1()
	if err := <-res1; !errors.Is(err, context.Canceled) || err.Error() != "secrets: resolving fake reference: context canceled" {
		t.Fatalf("cancelled caller: err = %v", err)
	}
	close(f.gate)
	if err := <-res2; err != nil {
		t.Fatalf("other caller: %v", err)
	}

	// Every caller gives up: the backend sees its context cancelled.
	f2 := &fake{values: map[string]string{"pg": value}, gate: make(chan struct{}), started: make(chan struct{}, 10), ctxErr: make(chan error, 1)}
	r2, _ := newTest(f2, time.Minute)
	ctx3, cancel3 := context.WithCancel(context.Background())
	res3 := make(chan error, 1)
	go func() { _, err := r2.Resolve(ctx3, "fake:pg"); res3 <- err }()
	<-f2.started
	cancel3()
	<-res3
	select {
	case err := <-f2.ctxErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("backend ctx err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend call not cancelled after every caller gave up")
	}
	// A new lookup starts afresh rather than joining the cancelled one.
	close(f2.gate)
	if v, err := r2.Resolve(context.Background(), "fake:pg"); err != nil || v.Reveal() != value {
		t.Fatalf("after cancel: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSchemes(t *testing.T) {
	r := New(map[string]secret.Backend{"file": file.New(), "env": env.New(), "vault": &fake{}}, 0, nil)
	if got, want := r.Schemes(), []string{"env", "file", "vault"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Schemes() = %v, want %v", got, want)
	}
}

// TestSecretNeverInErrorsOrLogs drives the real backends through every
// failure and success with a debug logger, and checks that neither an error
// nor the log mentions the secret.
func TestSecretNeverInErrorsOrLogs(t *testing.T) {
	dir := t.TempDir()
	insecure := filepath.Join(dir, "insecure")
	if err := os.WriteFile(insecure, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(insecure, 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GWTEST_SECRET", value)

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := New(map[string]secret.Backend{"env": env.New(), "file": file.New(), "fake": &fake{panics: true}}, time.Minute, log)

	failing := []string{
		"file:" + insecure,
		"env:GWTEST_MISSING",
		"fake:x",
		value,
		"env" + value,
		"vault:" + value,
		"s3cret:" + value,
	}
	for _, ref := range failing {
		_, err := r.Resolve(context.Background(), ref)
		if err == nil {
			t.Fatalf("%s: no error", ref)
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("error contains the secret: %v", err)
		}
	}
	for _, ref := range []string{"env:GWTEST_SECRET", "file:" + good} {
		v, err := r.Resolve(context.Background(), ref)
		if err != nil || v.Reveal() != value {
			t.Fatalf("%s: %v", ref, err)
		}
		log.Info("resolved", "value", v) // a Value that reaches a log by mistake
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged at debug level; the test checks nothing")
	}
	if strings.Contains(logs.String(), value) {
		t.Errorf("log contains the secret:\n%s", logs.String())
	}
}
