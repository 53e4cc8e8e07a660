// Package host runs WASM policy and masking modules by the gatewayd module
// ABI (../ABI.md) on wazero: it compiles and checks a module, instantiates
// it, and calls it with a deadline and a memory cap, reporting every failure
// as a *Fault after which the instance is closed.
//
// It is the one implementation of the host side of the ABI: the gateway's
// core pools instances built here, and package wasmtest uses it to run a
// module's tests against its compiled .wasm.
package host

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Defaults of RuntimeConfig and of a call.
const (
	DefaultMemoryLimit = 64 << 20
	DefaultCallTimeout = 100 * time.Millisecond
	pageSize           = 64 << 10
	// maxLogBytes bounds what one instance may write to stdout and stderr.
	maxLogBytes = 64 << 10
)

// RuntimeConfig configures a Runtime.
type RuntimeConfig struct {
	// CacheDir keeps compiled modules across restarts; "" compiles in
	// memory only.
	CacheDir string
	// MemoryLimit caps each instance's linear memory, in bytes (rounded
	// down to 64 KiB pages); 0 means DefaultMemoryLimit.
	MemoryLimit uint64
	// CallTimeout bounds each call into an instance; 0 means
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// Uninterruptible compiles modules without wazero's termination
	// checks: calls run several times faster (a Go guest spends most of a
	// call in those checks, since Go's WebAssembly uses a loop for every
	// branch), but a call that loops forever cannot be stopped, and the
	// call deadline is not enforced. Only for modules trusted to
	// terminate, such as gatewayd's built-ins.
	Uninterruptible bool
}

// Runtime compiles and instantiates modules. It is safe for concurrent use.
type Runtime struct {
	rt          wazero.Runtime
	cache       wazero.CompilationCache
	memoryLimit uint64
	callTimeout time.Duration
	// interruptible is false for a runtime whose calls cannot be stopped.
	interruptible bool
}

// NewRuntime starts a runtime. Close releases it and every module and
// instance made from it.
func NewRuntime(ctx context.Context, cfg RuntimeConfig) (*Runtime, error) {
	limit := cfg.MemoryLimit
	if limit == 0 {
		limit = DefaultMemoryLimit
	}
	if limit < pageSize {
		return nil, fmt.Errorf("host: memory limit %d bytes is below one 64 KiB page", limit)
	}
	if limit > 4<<30 {
		return nil, fmt.Errorf("host: memory limit %d bytes is above the 4 GiB a 32-bit module can address", limit)
	}
	timeout := cfg.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(!cfg.Uninterruptible). // the only way to stop a guest in a loop
		WithMemoryLimitPages(uint32(limit / pageSize))
	r := &Runtime{memoryLimit: limit / pageSize * pageSize, callTimeout: timeout, interruptible: !cfg.Uninterruptible}
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("host: opening compilation cache %s: %w", cfg.CacheDir, err)
		}
		r.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	r.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		_ = r.rt.Close(ctx)
		return nil, fmt.Errorf("host: instantiating WASI: %w", err)
	}
	return r, nil
}

// Close releases the runtime, its modules and instances.
func (r *Runtime) Close(ctx context.Context) error {
	err := r.rt.Close(ctx)
	if r.cache != nil {
		err = errors.Join(err, r.cache.Close(ctx))
	}
	return err
}

// Module is a compiled, checked module.
type Module struct {
	rt       *Runtime
	name     string
	sha      string
	compiled wazero.CompiledModule
	// exports present beyond the required ones
	hasPolicy, hasMask bool
}

// Name is the name the module was compiled under (for errors and logs).
func (m *Module) Name() string { return m.name }

// SHA256 is the hex sha256 of the module's bytes.
func (m *Module) SHA256() string { return m.sha }

// Compile compiles wasm and checks it against the ABI: a version export of
// a major version this host speaks, the required exports, and imports
// from WASI only. name identifies the module in errors.
func (r *Runtime) Compile(ctx context.Context, name string, wasm []byte) (*Module, error) {
	sum := sha256.Sum256(wasm)
	compiled, err := r.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("module %s: compiling: %w", name, err)
	}
	m := &Module{rt: r, name: name, sha: hex.EncodeToString(sum[:]), compiled: compiled}
	if err := m.check(); err != nil {
		_ = compiled.Close(ctx)
		return nil, fmt.Errorf("module %s: %w", name, err)
	}
	return m, nil
}

func (m *Module) check() error {
	exports := m.compiled.ExportedFunctions()
	major := -1
	for name := range exports {
		if v, ok := strings.CutPrefix(name, abi.ExportVersionPrefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("export %q is not a version marker", name)
			}
			major = n
		}
	}
	switch {
	case major < 0:
		return fmt.Errorf("no %sN export: not a gatewayd module (this gateway speaks ABI %d)", abi.ExportVersionPrefix, abi.Major)
	case major != abi.Major:
		return fmt.Errorf("module speaks ABI %d, this gateway speaks %d", major, abi.Major)
	}
	want := map[string]struct {
		params, results []api.ValueType
	}{
		abi.ExportVersion: {nil, []api.ValueType{api.ValueTypeI32}},
		abi.ExportBuffer:  {[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
		abi.ExportInit:    {[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
		abi.ExportPolicy:  {[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
		abi.ExportMask:    {[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	}
	for name, sig := range want {
		def, ok := exports[name]
		if !ok {
			if name == abi.ExportPolicy || name == abi.ExportMask {
				continue
			}
			return fmt.Errorf("missing export %s", name)
		}
		if !equalTypes(def.ParamTypes(), sig.params) || !equalTypes(def.ResultTypes(), sig.results) {
			return fmt.Errorf("export %s has the wrong signature", name)
		}
	}
	_, m.hasPolicy = exports[abi.ExportPolicy]
	_, m.hasMask = exports[abi.ExportMask]
	if _, ok := exports["_initialize"]; !ok {
		return errors.New("missing export _initialize: build the module as a reactor (go build -buildmode=c-shared)")
	}
	if _, ok := m.compiled.ExportedMemories()["memory"]; !ok {
		return errors.New("missing exported memory")
	}
	for _, def := range m.compiled.ImportedFunctions() {
		mod, name, _ := def.Import()
		if mod != wasi_snapshot_preview1.ModuleName {
			return fmt.Errorf("imports %s.%s: modules may import only %s", mod, name, wasi_snapshot_preview1.ModuleName)
		}
	}
	return nil
}

func equalTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Close releases the compiled module. Instances already made keep working.
func (m *Module) Close(ctx context.Context) error { return m.compiled.Close(ctx) }

// InitError is a module refusing its configuration.
type InitError struct {
	Module  string
	Message string
}

func (e *InitError) Error() string {
	return fmt.Sprintf("module %s refused its config: %s", e.Module, e.Message)
}

// Fault is a failed call: the instance is closed and must not be used again.
type Fault struct {
	Module string
	SHA256 string
	// Reason is "trap", "timeout", "memory", "exit" or "malformed".
	Reason string
	Err    error
}

func (f *Fault) Error() string {
	return fmt.Sprintf("module %s: %s: %v", f.Module, f.Reason, f.Err)
}

func (f *Fault) Unwrap() error { return f.Err }

// Instance is one instance of a module. It is not safe for concurrent use.
type Instance struct {
	m   *Module
	mod api.Module
	mem api.Memory

	buffer, init, policy, mask api.Function

	sub    abi.Subscription
	bufPtr uint32
	bufCap uint32
	in     []byte
	stack  [1]uint64

	// A call is bounded by cancelling ctx from the timer; wazero then
	// stops the guest at its next function entry or loop header.
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	closed bool
	log    *logWriter
}

// Instantiate makes a new instance and configures it with config, a JSON
// object. A module refusing its config returns an *InitError.
func (m *Module) Instantiate(ctx context.Context, config []byte, log *slog.Logger) (*Instance, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lw := &logWriter{log: log.With("module", m.name)}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStdout(lw).
		WithStderr(lw).
		// The clocks stay wazero's deterministic fake ones: a Go guest's
		// runtime reads them on every call, and with real clocks and no
		// real sleep its timers would spin a call past its deadline.
		WithRandSource(rand.Reader)
	ictx, cancel := context.WithCancel(withMemory(context.Background()))
	i := &Instance{m: m, ctx: ictx, cancel: cancel, log: lw}
	i.timer = time.AfterFunc(time.Hour, cancel)
	i.timer.Stop()

	// Instantiation runs the Go runtime's initialisation: bound it too.
	i.timer.Reset(10 * m.rt.callTimeout)
	mod, err := m.rt.rt.InstantiateModule(ictx, m.compiled, mc)
	i.timer.Stop()
	if err != nil {
		cancel()
		return nil, i.fault(err)
	}
	i.mod, i.mem = mod, mod.Memory()
	i.buffer = mod.ExportedFunction(abi.ExportBuffer)
	i.init = mod.ExportedFunction(abi.ExportInit)
	i.policy = mod.ExportedFunction(abi.ExportPolicy)
	i.mask = mod.ExportedFunction(abi.ExportMask)

	if err := i.call(mod.ExportedFunction(abi.ExportVersion), 0); err != nil {
		return nil, err
	}
	if minor := uint32(i.stack[0]); minor > abi.Minor {
		i.Close(ctx)
		return nil, fmt.Errorf("module %s needs ABI %d.%d, this gateway speaks %d.%d", m.name, abi.Major, minor, abi.Major, abi.Minor)
	}
	out, err := i.callWith(i.init, config)
	if err != nil {
		return nil, err
	}
	var res abi.InitResult
	if err := abi.DecodeInitResult(out, &res); err != nil {
		return nil, i.closeWith("malformed", fmt.Errorf("init result: %w", err))
	}
	if res.Status != 0 {
		i.Close(ctx)
		return nil, &InitError{Module: m.name, Message: res.Message}
	}
	switch {
	case res.Subscribe.Requests() && !m.hasPolicy:
		i.Close(ctx)
		return nil, fmt.Errorf("module %s subscribes to request frames but does not export %s", m.name, abi.ExportPolicy)
	case res.Subscribe.Responses() && !m.hasMask:
		i.Close(ctx)
		return nil, fmt.Errorf("module %s subscribes to response frames but does not export %s", m.name, abi.ExportMask)
	}
	i.sub = res.Subscribe
	return i, nil
}

// Module is the module i is an instance of.
func (i *Instance) Module() *Module { return i.m }

// Subscription is the set of frame kinds the instance asked for.
func (i *Instance) Subscription() abi.Subscription { return i.sub }

// MemorySize is the instance's current linear memory size in bytes.
func (i *Instance) MemorySize() uint32 {
	if i.closed {
		return 0
	}
	return i.mem.Size()
}

// Policy asks the module for a verdict on req. The call is bounded by the
// runtime's CallTimeout (when interruptible), not by ctx.
func (i *Instance) Policy(ctx context.Context, req *abi.Request, v *abi.Verdict) error {
	if i.policy == nil || !i.sub.Has(req.Kind) {
		return fmt.Errorf("module %s did not subscribe to %s", i.m.name, req.Kind)
	}
	i.in = abi.AppendRequest(i.in[:0], req)
	out, err := i.callWith(i.policy, i.in)
	if err != nil {
		return err
	}
	if err := abi.DecodeVerdict(out, v); err != nil {
		return i.closeWith("malformed", fmt.Errorf("verdict: %w", err))
	}
	return nil
}

// Mask asks the module to mask batch. The changes' values alias the
// instance's memory and are valid until the next call. The call is bounded
// by the runtime's CallTimeout (when interruptible), not by ctx.
func (i *Instance) Mask(ctx context.Context, batch *abi.Batch, c *abi.Changes) error {
	if i.mask == nil || !i.sub.Has(batch.Kind) {
		return fmt.Errorf("module %s did not subscribe to %s", i.m.name, batch.Kind)
	}
	i.in = abi.AppendBatch(i.in[:0], batch)
	out, err := i.callWith(i.mask, i.in)
	if err != nil {
		return err
	}
	if err := abi.DecodeChanges(out, c, batch.Rows(), len(batch.Columns)); err != nil {
		return i.closeWith("malformed", fmt.Errorf("changes: %w", err))
	}
	return nil
}

// callWith copies in into the guest's buffer, calls fn(len(in)) and returns
// a view of the output in guest memory.
func (i *Instance) callWith(fn api.Function, in []byte) ([]byte, error) {
	if i.closed {
		return nil, &Fault{Module: i.m.name, SHA256: i.m.sha, Reason: "closed", Err: errors.New("instance closed after an earlier fault")}
	}
	n := uint32(len(in))
	if n > i.bufCap || i.bufPtr == 0 {
		if err := i.call(i.buffer, uint64(n)); err != nil {
			return nil, err
		}
		ptr := uint32(i.stack[0])
		if ptr == 0 {
			return nil, i.closeWith("memory", fmt.Errorf("cannot allocate a %d-byte input buffer", n))
		}
		i.bufPtr, i.bufCap = ptr, n
	}
	if !i.mem.Write(i.bufPtr, in) {
		return nil, i.closeWith("malformed", errors.New("input buffer outside memory"))
	}
	if err := i.call(fn, uint64(n)); err != nil {
		return nil, err
	}
	ptr, size := uint32(i.stack[0]>>32), uint32(i.stack[0])
	if size > abi.MaxOutput {
		return nil, i.closeWith("malformed", fmt.Errorf("output of %d bytes exceeds %d", size, abi.MaxOutput))
	}
	out, ok := i.mem.Read(ptr, size)
	if !ok {
		return nil, i.closeWith("malformed", errors.New("output outside memory"))
	}
	return out, nil
}

// call runs fn with one parameter (or none when fn takes none) under the
// call deadline; its result is in i.stack[0].
func (i *Instance) call(fn api.Function, param uint64) error {
	i.stack[0] = param
	if !i.m.rt.interruptible {
		if err := fn.CallWithStack(i.ctx, i.stack[:]); err != nil {
			return i.fault(err)
		}
		return nil
	}
	i.timer.Reset(i.m.rt.callTimeout)
	err := fn.CallWithStack(i.ctx, i.stack[:])
	i.timer.Stop()
	if err != nil {
		return i.fault(err)
	}
	return nil
}

// fault classifies a failed call and closes the instance.
func (i *Instance) fault(err error) error {
	reason := "trap"
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			reason = "timeout"
			err = fmt.Errorf("call exceeded its %s deadline", i.m.rt.callTimeout)
		default:
			reason = "exit"
		}
	}
	if reason != "timeout" && i.mem != nil && uint64(i.mem.Size())+4*pageSize > i.m.rt.memoryLimit {
		reason = "memory"
		err = fmt.Errorf("reached the %d MiB memory limit: %w", i.m.rt.memoryLimit>>20, err)
	}
	return i.closeWith(reason, err)
}

func (i *Instance) closeWith(reason string, err error) error {
	i.Close(context.Background())
	return &Fault{Module: i.m.name, SHA256: i.m.sha, Reason: reason, Err: err}
}

// Close releases the instance. It is safe to call more than once.
func (i *Instance) Close(ctx context.Context) error {
	if i.closed {
		return nil
	}
	i.closed = true
	i.timer.Stop()
	i.cancel()
	if i.mod != nil {
		return i.mod.Close(ctx)
	}
	return nil
}

// logWriter turns a guest's stdout and stderr into debug log lines, up to
// maxLogBytes per instance.
type logWriter struct {
	mu      sync.Mutex
	log     *slog.Logger
	written int
	line    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.written >= maxLogBytes {
		return n, nil
	}
	if w.written+len(p) > maxLogBytes {
		p = p[:maxLogBytes-w.written]
	}
	w.written += len(p)
	for len(p) > 0 {
		j := indexNL(p)
		if j < 0 {
			w.line = append(w.line, p...)
			break
		}
		w.line = append(w.line, p[:j]...)
		w.log.Debug("module output", "line", string(w.line))
		w.line = w.line[:0]
		p = p[j+1:]
	}
	if w.written >= maxLogBytes {
		w.log.Debug("module output truncated", "limit_bytes", maxLogBytes)
	}
	return n, nil
}

func indexNL(p []byte) int {
	for i, c := range p {
		if c == '\n' {
			return i
		}
	}
	return -1
}
