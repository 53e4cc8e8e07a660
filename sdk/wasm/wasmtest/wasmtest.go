// Package wasmtest runs a module's tests twice: natively, calling the
// guest.Module in-process through the guest SDK's dispatcher (fast, with
// the debugger and the race detector), and against the module compiled to
// .wasm and run by package host, as the gateway runs it.
//
//	func TestMask(t *testing.T) {
//		wasmtest.Both(t, module, ".", `{"keep_last": 2}`, func(t *testing.T, r wasmtest.Runner) {
//			...
//		})
//	}
package wasmtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/host"
)

// Runner is one configured instance of a module. An error from Policy or
// Mask is a fault (a trap, a panic, output that does not decode, a frame
// kind the module did not subscribe to): after one, the instance is closed
// and every later call fails, as in the gateway.
type Runner interface {
	Policy(req *abi.Request) (abi.Verdict, error)
	// Mask returns the module's changes to b, copied out of the instance.
	Mask(b *abi.Batch) (abi.Changes, error)
	Close()
}

// CallTimeout bounds each call of a Wasm runner. It is looser than the
// gateway's default (host.DefaultCallTimeout) so that a loaded test machine
// does not fail a test; benchmark a module to know its real cost.
const CallTimeout = 2 * time.Second

// ErrClosed is returned by a Runner's calls after it was closed or faulted.
var ErrClosed = errors.New("wasmtest: instance closed")

// Native configures m with config (a JSON object; "" means "{}") and
// returns a runner calling it in this process, through the same encoding
// and dispatch as the compiled module. A refused config fails the test.
//
// Every native instance of a module shares the module's package-level
// state, unlike instances of the .wasm: runners of one module with
// different configs must not be used at the same time.
func Native(t testing.TB, m guest.Module, config string) Runner {
	t.Helper()
	r := &nativeRunner{inst: guest.NewInstance(m)}
	t.Cleanup(r.Close)
	out, err := r.call(r.inst.Init, []byte(orEmpty(config)))
	if err != nil {
		t.Fatalf("wasmtest: init: %v", err)
	}
	var res abi.InitResult
	if err := abi.DecodeInitResult(out, &res); err != nil {
		t.Fatalf("wasmtest: init result: %v", err)
	}
	if res.Status != 0 {
		t.Fatalf("wasmtest: module refused its config %s: %s", orEmpty(config), res.Message)
	}
	r.sub = res.Subscribe
	return r
}

func orEmpty(config string) string {
	if strings.TrimSpace(config) == "" {
		return "{}"
	}
	return config
}

// nativeRunner plays the host's part for a guest.Instance: it keeps the
// input buffer until a larger input needs a new one, and turns a panic into
// a fault, as a trap is in wasm.
type nativeRunner struct {
	inst *guest.Instance
	sub  abi.Subscription
	buf  []byte // the instance's input buffer
	in   []byte // the encoded input
	err  error  // set by a fault or Close
}

func (r *nativeRunner) Policy(req *abi.Request) (abi.Verdict, error) {
	var v abi.Verdict
	if !r.sub.Has(req.Kind) {
		return v, fmt.Errorf("wasmtest: module did not subscribe to %s", req.Kind)
	}
	r.in = abi.AppendRequest(r.in[:0], req)
	out, err := r.call(r.inst.Policy, r.in)
	if err != nil {
		return v, err
	}
	if err := abi.DecodeVerdict(out, &v); err != nil {
		return v, r.fault(fmt.Errorf("verdict: %w", err))
	}
	return v, nil
}

func (r *nativeRunner) Mask(b *abi.Batch) (abi.Changes, error) {
	var c abi.Changes
	if !r.sub.Has(b.Kind) {
		return c, fmt.Errorf("wasmtest: module did not subscribe to %s", b.Kind)
	}
	r.in = abi.AppendBatch(r.in[:0], b)
	out, err := r.call(r.inst.Mask, r.in)
	if err != nil {
		return c, err
	}
	if err := abi.DecodeChanges(out, &c, b.Rows(), len(b.Columns)); err != nil {
		return c, r.fault(fmt.Errorf("changes: %w", err))
	}
	copyOut(&c)
	return c, nil
}

// call writes in into the instance's buffer, calling Buffer only when the
// last one is too small (as the host does), and calls fn.
func (r *nativeRunner) call(fn func(n int) []byte, in []byte) (out []byte, err error) {
	if r.err != nil {
		return nil, r.err
	}
	defer func() {
		if p := recover(); p != nil {
			err = r.fault(fmt.Errorf("trap: panic: %v\n%s", p, debug.Stack()))
		}
	}()
	if len(in) > len(r.buf) {
		r.buf = r.inst.Buffer(len(in))
	}
	copy(r.buf, in)
	return fn(len(in)), nil
}

func (r *nativeRunner) fault(err error) error {
	r.err = fmt.Errorf("%w after a fault", ErrClosed)
	return fmt.Errorf("wasmtest: native module: %w", err)
}

func (r *nativeRunner) Close() {
	if r.err == nil {
		r.err = ErrClosed
	}
}

// copyOut copies the changes' values, which alias the instance's output.
func copyOut(c *abi.Changes) {
	for i := range c.List {
		if !c.List[i].Null {
			c.List[i].Value = bytes.Clone(c.List[i].Value)
			if c.List[i].Value == nil {
				c.List[i].Value = []byte{}
			}
		}
	}
}

// Build compiles the main package pkg (a path as go build takes it,
// relative to the test's directory) to a WASI reactor, GOOS=wasip1
// GOARCH=wasm -buildmode=c-shared -trimpath, and returns the path of the
// .wasm, in a directory removed when t ends. The package is built once per
// test binary.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	wasm, err := builds.get(pkg)
	if err != nil {
		t.Fatalf("wasmtest: %v", err)
	}
	path := filepath.Join(t.TempDir(), "module.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatalf("wasmtest: %v", err)
	}
	return path
}

var builds = buildCache{m: map[string]*build{}}

type buildCache struct {
	mu sync.Mutex
	m  map[string]*build
}

type build struct {
	once sync.Once
	wasm []byte
	err  error
}

func (c *buildCache) get(pkg string) ([]byte, error) {
	c.mu.Lock()
	b := c.m[pkg]
	if b == nil {
		b = &build{}
		c.m[pkg] = b
	}
	c.mu.Unlock()
	b.once.Do(func() { b.wasm, b.err = goBuild(pkg) })
	return b.wasm, b.err
}

func goBuild(pkg string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "wasmtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "module.wasm")
	// go test puts its own toolchain's bin first in PATH.
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %s for wasip1/wasm: %w\n%s", pkg, err, msg)
	}
	return os.ReadFile(out)
}

// The runtime and compiled modules are shared by every Wasm runner of the
// test binary, compiled once per distinct module.
var shared struct {
	mu      sync.Mutex
	rts     map[bool]*host.Runtime // by uninterruptible
	modules map[moduleKey]*host.Module
}

func compile(path string, uninterruptible bool) (*host.Module, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wasm)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.rts == nil {
		shared.rts, shared.modules = map[bool]*host.Runtime{}, map[moduleKey]*host.Module{}
	}
	rt := shared.rts[uninterruptible]
	if rt == nil {
		rt, err = host.NewRuntime(context.Background(), host.RuntimeConfig{CallTimeout: CallTimeout, Uninterruptible: uninterruptible})
		if err != nil {
			return nil, err
		}
		shared.rts[uninterruptible] = rt
	}
	key := moduleKey{sum, uninterruptible}
	if m := shared.modules[key]; m != nil {
		return m, nil
	}
	m, err := rt.Compile(context.Background(), filepath.Base(path), wasm)
	if err != nil {
		return nil, err
	}
	shared.modules[key] = m
	return m, nil
}

type moduleKey struct {
	sum             [sha256.Size]byte
	uninterruptible bool
}

// Wasm instantiates the compiled module at wasmPath with config (a JSON
// object; "" means "{}") through package host, as the gateway does, and
// returns a runner calling it. The module's output (stdout, stderr) goes to
// the test log. A module that does not load or refuses its config fails the
// test.
func Wasm(t testing.TB, wasmPath string, config string) Runner {
	t.Helper()
	return wasmRunnerFor(t, wasmPath, config, false)
}

// WasmUninterruptible is Wasm for a module run as gatewayd runs one
// configured with interruptible = false (the built-ins): without wazero's
// termination checks, so faster, and with no call deadline.
func WasmUninterruptible(t testing.TB, wasmPath string, config string) Runner {
	t.Helper()
	return wasmRunnerFor(t, wasmPath, config, true)
}

func wasmRunnerFor(t testing.TB, wasmPath, config string, uninterruptible bool) Runner {
	t.Helper()
	m, err := compile(wasmPath, uninterruptible)
	if err != nil {
		t.Fatalf("wasmtest: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inst, err := m.Instantiate(context.Background(), []byte(orEmpty(config)), log)
	if err != nil {
		t.Fatalf("wasmtest: %v", err)
	}
	r := &wasmRunner{inst: inst}
	t.Cleanup(r.Close)
	return r
}

type wasmRunner struct {
	inst   *host.Instance
	closed bool
}

func (r *wasmRunner) Policy(req *abi.Request) (abi.Verdict, error) {
	var v abi.Verdict
	if r.closed {
		return v, ErrClosed
	}
	err := r.inst.Policy(context.Background(), req, &v)
	return v, err
}

func (r *wasmRunner) Mask(b *abi.Batch) (abi.Changes, error) {
	var c abi.Changes
	if r.closed {
		return c, ErrClosed
	}
	if err := r.inst.Mask(context.Background(), b, &c); err != nil {
		return c, err
	}
	copyOut(&c)
	return c, nil
}

func (r *wasmRunner) Close() {
	if !r.closed {
		r.closed = true
		_ = r.inst.Close(context.Background())
	}
}

// testWriter writes log lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Both runs fn twice, as subtests: "native" with Native(t, m, config), and
// "wasm" with the main package pkg built by Build and run by Wasm. With
// -short, the wasm subtest is skipped.
func Both(t *testing.T, m guest.Module, pkg string, config string, fn func(t *testing.T, r Runner)) {
	t.Helper()
	t.Run("native", func(t *testing.T) {
		fn(t, Native(t, m, config))
	})
	t.Run("wasm", func(t *testing.T) {
		if testing.Short() {
			t.Skip("wasmtest: -short: not building the module to .wasm")
		}
		fn(t, Wasm(t, Build(t, pkg), config))
	})
}
