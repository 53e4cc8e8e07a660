// Package policy runs the policy and masking modules of gateway.toml on
// sessions: it compiles every module once, keeps a bounded pool of fresh
// instances per module, gives each session its own instances (discarded
// when the session ends, so no state crosses sessions), parses SQL once for
// the policy modules, and chains the masking modules over batches of values.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/shellparse"
	"github.com/gatewayd-access/gatewayd/core/sqlparse"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/host"
)

// Bounds of the SQL parse cache shared by every session.
const (
	parseCacheEntries = 4096
	parseCacheBytes   = 8 << 20
	// warmInstances is how many fresh instances each module keeps ready,
	// so that a new session does not pay an instantiation.
	warmInstances = 1
	// acquireTimeout bounds the wait for an instance when a module has
	// max_instances live.
	acquireTimeout = 5 * time.Second
)

// ErrUnparsable wraps a statement that does not parse.
var ErrUnparsable = errors.New("policy: statement does not parse")

// ErrBusy reports that a module has max_instances live instances.
var ErrBusy = errors.New("policy: no module instance free")

// Options configure an Engine.
type Options struct {
	Config *config.Config
	// Builtins maps built-in module names to their .wasm bytes.
	Builtins map[string][]byte
	Log      *slog.Logger
}

// Engine holds the compiled modules and their pools. It is safe for
// concurrent use.
type Engine struct {
	// rts are the runtimes by interruptibility: wazero's termination
	// checks are a property of a runtime.
	rts      map[bool]*host.Runtime
	log      *slog.Logger
	modules  []*host.Module
	policies []*binding
	maskers  []*binding
	parse    *sqlparse.Cache
}

// binding is one [[policy]] or [[masking]] table: a module with a config,
// where it applies, and its instance pool.
type binding struct {
	name   string // the module as configured, for audit and errors
	mod    *host.Module
	config []byte
	globs  []string
	groups []string
	sub    abi.Subscription
	pool   *pool
}

// New compiles the configured modules (cached in data_dir) and starts one
// instance of each configuration, so that a module refusing its config is a
// startup error.
func New(ctx context.Context, o Options) (*Engine, error) {
	cfg := o.Config
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{log: log, parse: sqlparse.NewCache(parseCacheEntries, parseCacheBytes)}
	if len(cfg.Policy)+len(cfg.Masking) == 0 {
		return e, nil
	}
	cacheDir := cfg.Modules.CacheDir
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("policy: creating module cache: %w", err)
	}
	e.rts = map[bool]*host.Runtime{}
	runtime := func(interruptible bool) (*host.Runtime, error) {
		if rt, ok := e.rts[interruptible]; ok {
			return rt, nil
		}
		rt, err := host.NewRuntime(ctx, host.RuntimeConfig{
			CacheDir:        cacheDir,
			MemoryLimit:     uint64(cfg.Modules.MemoryLimit),
			CallTimeout:     cfg.Modules.CallTimeout.Duration,
			Uninterruptible: !interruptible,
		})
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		e.rts[interruptible] = rt
		return rt, nil
	}
	compiled := map[string]*host.Module{} // by sha256 and interruptibility
	load := func(role string, i int, m *config.Module) (*binding, error) {
		wasm, err := e.moduleBytes(m, o.Builtins)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", role, i+1, err)
		}
		interruptible := m.Interruptible == nil || *m.Interruptible
		rt, err := runtime(interruptible)
		if err != nil {
			return nil, err
		}
		mod, err := e.compile(ctx, rt, compiled, m.Module, wasm, interruptible)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", role, i+1, err)
		}
		conf, err := json.Marshal(m.Config)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: encoding config: %w", role, i+1, err)
		}
		b := &binding{name: m.Module, mod: mod, config: conf, globs: m.Connections, groups: m.Groups}
		b.pool = newPool(mod, conf, cfg.Modules.MaxInstances, log)
		first, err := b.pool.instantiate(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", role, i+1, err)
		}
		b.sub = first.Subscription()
		switch {
		case role == "policy" && !b.sub.Requests():
			_ = first.Close(ctx)
			return nil, fmt.Errorf("%s[%d]: module %s subscribes to no request frames: it is not a policy module", role, i+1, m.Module)
		case role == "masking" && !b.sub.Responses():
			_ = first.Close(ctx)
			return nil, fmt.Errorf("%s[%d]: module %s subscribes to no response frames: it is not a masking module", role, i+1, m.Module)
		}
		b.pool.put(first)
		b.pool.refill()
		return b, nil
	}
	for i := range cfg.Policy {
		b, err := load("policy", i, &cfg.Policy[i])
		if err != nil {
			_ = e.Close(ctx)
			return nil, err
		}
		e.policies = append(e.policies, b)
	}
	for i := range cfg.Masking {
		b, err := load("masking", i, &cfg.Masking[i])
		if err != nil {
			_ = e.Close(ctx)
			return nil, err
		}
		e.maskers = append(e.maskers, b)
	}
	return e, nil
}

func (e *Engine) moduleBytes(m *config.Module, builtins map[string][]byte) ([]byte, error) {
	if !m.IsFile() {
		wasm, ok := builtins[m.Module]
		if !ok {
			return nil, fmt.Errorf("no built-in module %q", m.Module)
		}
		return wasm, nil
	}
	wasm, err := os.ReadFile(m.Module)
	if err != nil {
		return nil, fmt.Errorf("reading module: %w", err)
	}
	// The pin is checked on the bytes about to be compiled.
	if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != m.SHA256 {
		return nil, fmt.Errorf("module %s: its sha256 is %s, gateway.toml pins %s: refusing to load it", m.Module, hex.EncodeToString(sum[:]), m.SHA256)
	}
	return wasm, nil
}

func (e *Engine) compile(ctx context.Context, rt *host.Runtime, compiled map[string]*host.Module, name string, wasm []byte, interruptible bool) (*host.Module, error) {
	mod, err := rt.Compile(ctx, name, wasm)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprint(mod.SHA256(), interruptible)
	if prev, ok := compiled[key]; ok {
		_ = mod.Close(ctx)
		return prev, nil
	}
	compiled[key] = mod
	e.modules = append(e.modules, mod)
	return mod, nil
}

// Close stops every pool and closes the runtimes. Closing a runtime frees
// the memory and code of every instance, so while a session still holds an
// instance (one that outlived the gateway's shutdown timeout) the runtimes
// are left to the process's exit instead.
func (e *Engine) Close(ctx context.Context) error {
	live := 0
	for _, b := range slices.Concat(e.policies, e.maskers) {
		live += b.pool.close(ctx)
	}
	if live > 0 {
		return fmt.Errorf("policy: %d module instances still in use by sessions: runtimes left open", live)
	}
	var err error
	for _, rt := range e.rts {
		err = errors.Join(err, rt.Close(ctx))
	}
	return err
}

// Session is the modules that apply to one session, with the session's own
// instances. Check is called from one goroutine at a time and Mask from one
// goroutine at a time (they may run concurrently with each other).
type Session struct {
	e        *Engine
	info     abi.Session
	policies []*use
	maskers  []*use
	masks    abi.Subscription

	req     abi.Request
	verdict abi.Verdict

	changes abi.Changes
	scratch abi.Batch
	merged  []abi.Change
}

// use is a binding in one session, with the instance it holds.
type use struct {
	b    *binding
	inst *host.Instance
}

// Open returns the modules that apply to a session of info on its
// connection, or nil when none does.
func (e *Engine) Open(info abi.Session) *Session {
	s := &Session{e: e, info: info}
	for _, b := range e.policies {
		if b.applies(&info) {
			s.policies = append(s.policies, &use{b: b})
		}
	}
	for _, b := range e.maskers {
		if b.applies(&info) {
			s.maskers = append(s.maskers, &use{b: b})
			s.masks |= b.sub &^ 0xff
		}
	}
	if len(s.policies)+len(s.maskers) == 0 {
		return nil
	}
	s.req.Session = info
	return s
}

func (b *binding) applies(s *abi.Session) bool {
	if !slices.ContainsFunc(b.globs, func(g string) bool { return config.MatchGlob(g, s.Connection) }) {
		return false
	}
	return len(b.groups) == 0 || slices.ContainsFunc(s.Groups, func(g string) bool { return slices.Contains(b.groups, g) })
}

// HasPolicy reports whether requests of the session go through policy.
func (s *Session) HasPolicy() bool { return s != nil && len(s.policies) > 0 }

// Masks returns the response frame kinds masked on the session.
func (s *Session) Masks() abi.Subscription {
	if s == nil {
		return 0
	}
	return s.masks
}

// Fault is a module failure during a session: the instance was discarded.
type Fault struct {
	Module string
	*host.Fault
}

// Decision is a policy answer with the module that gave it.
type Decision struct {
	Verdict abi.Verdict
	Module  string
	// Statements is the parsed request (SQL only).
	Statements []abi.Statement
}

// Check runs the policy modules on a request. SQL text that does not parse
// returns an error wrapping ErrUnparsable; a module failure a *Fault.
func (s *Session) Check(ctx context.Context, kind abi.FrameKind, text string, attrs []abi.Attr) (Decision, error) {
	s.req.Kind, s.req.Text, s.req.Attrs = kind, text, attrs
	s.req.Statements = s.req.Statements[:0]
	switch kind {
	case abi.SQLQuery, abi.SQLParse:
		stmts, err := s.e.parse.Parse(text)
		if err != nil {
			return Decision{}, fmt.Errorf("%w: %v", ErrUnparsable, err)
		}
		for i := range stmts {
			s.req.Statements = append(s.req.Statements, toABI(&stmts[i]))
		}
	case abi.ShellExec:
		a, err := shellparse.Parse(text)
		if err != nil {
			return Decision{}, fmt.Errorf("%w: %v", ErrUnparsable, err)
		}
		s.req.Statements = commandsToABI(s.req.Statements, a)
	}
	d := Decision{Verdict: abi.Verdict{Action: abi.Allow}, Statements: s.req.Statements}
	if len(s.policies) == 0 {
		return d, nil
	}
	for _, u := range s.policies {
		if !u.b.sub.Has(kind) {
			continue
		}
		inst, err := u.instance(ctx)
		if err != nil {
			return d, err
		}
		if err := inst.Policy(ctx, &s.req, &s.verdict); err != nil {
			return d, u.fault(err)
		}
		if s.verdict.Action != abi.Allow {
			d.Verdict = abi.Verdict{Action: s.verdict.Action, Reason: s.verdict.Reason, Reviewers: slices.Clone(s.verdict.Reviewers)}
			d.Module = u.b.name
			return d, nil
		}
	}
	return d, nil
}

// Statements parses SQL text (cached) without asking any module, for
// checks the gateway makes itself.
func (e *Engine) Statements(text string) ([]sqlparse.Statement, error) { return e.parse.Parse(text) }

// commandsToABI gives policy the simple commands of a command line, as
// ABI.md describes: kind the command's name, functions its arguments,
// object where it sits (subshell, cmdsubst, ...); redirections become
// statements of kind "REDIRECT" whose tables are the targets. Anything the
// parser could not resolve is flagged Dynamic.
func commandsToABI(dst []abi.Statement, a *shellparse.Analysis) []abi.Statement {
	for _, c := range a.Commands {
		st := abi.Statement{Kind: c.Name, Object: c.Context, Kinds: []string{c.Name}, Functions: c.Args}
		switch {
		case c.Name == "" || a.Dynamic:
			st.Flags |= abi.Dynamic
		case c.Dynamic:
			st.Flags |= abi.DynamicArgs
		}
		dst = append(dst, st)
	}
	for _, r := range a.Redirects {
		st := abi.Statement{Kind: "REDIRECT", Object: r.Op, Kinds: []string{"REDIRECT"}, Tables: []string{r.Target}}
		if r.Dynamic || a.Dynamic {
			st.Flags |= abi.Dynamic
		}
		dst = append(dst, st)
	}
	if len(dst) == 0 && a.Dynamic {
		dst = append(dst, abi.Statement{Flags: abi.Dynamic})
	}
	return dst
}

func toABI(st *sqlparse.Statement) abi.Statement {
	a := abi.Statement{Kind: st.Kind, Object: st.Object, Kinds: st.Kinds, Tables: st.Tables, Functions: st.Functions}
	if c := st.Copy; c != nil {
		if c.From {
			a.Flags |= abi.CopyFrom
		} else {
			a.Flags |= abi.CopyTo
		}
		if c.Program {
			a.Flags |= abi.CopyProgram
		} else if !c.Stdio {
			a.Flags |= abi.CopyFile
		}
	}
	if st.Dynamic {
		a.Flags |= abi.Dynamic
	}
	return a
}

// MaskResult is what the masking modules made of a batch.
type MaskResult struct {
	// Changes are the values to replace, in (row, col) order; they are
	// valid until the next Mask.
	Changes   []abi.Change
	Terminate bool
	Module    string
	Reason    string
}

// Mask runs the session's masking modules over batch, in configuration
// order, each seeing the previous one's output. A module failure returns a
// *Fault.
func (s *Session) Mask(ctx context.Context, batch *abi.Batch) (MaskResult, error) {
	batch.Session = s.info
	var res MaskResult
	cur := batch
	s.merged = s.merged[:0]
	n := 0
	for _, u := range s.maskers {
		if !u.b.sub.Has(batch.Kind) {
			continue
		}
		inst, err := u.instance(ctx)
		if err != nil {
			return res, err
		}
		s.changes.Reset()
		if err := inst.Mask(ctx, cur, &s.changes); err != nil {
			return res, u.fault(err)
		}
		if s.changes.Action == abi.Terminate {
			return MaskResult{Terminate: true, Module: u.b.name, Reason: s.changes.Reason}, nil
		}
		if len(s.changes.List) == 0 {
			continue
		}
		n++
		if n == 1 && u == s.lastMasker(batch.Kind) {
			// The common case: one module changed something; its changes
			// are the result as they are.
			res.Changes = s.changes.List
			return res, nil
		}
		s.merged = mergeChanges(s.merged, s.changes.List)
		cur = s.apply(batch, s.merged)
	}
	if n == 0 {
		return res, nil
	}
	res.Changes = s.merged
	return res, nil
}

func (s *Session) lastMasker(kind abi.FrameKind) *use {
	for i := len(s.maskers) - 1; i >= 0; i-- {
		if s.maskers[i].b.sub.Has(kind) {
			return s.maskers[i]
		}
	}
	return nil
}

// mergeChanges merges newer changes into older ones, both in (row, col)
// order; the newer wins. Values are copied, since a module's output dies
// with its next call.
func mergeChanges(old, newer []abi.Change) []abi.Change {
	out := make([]abi.Change, 0, len(old)+len(newer))
	i, j := 0, 0
	for i < len(old) || j < len(newer) {
		switch {
		case j == len(newer) || i < len(old) && less(old[i], newer[j]):
			out = append(out, old[i])
			i++
		case i == len(old) || less(newer[j], old[i]):
			out = append(out, copyChange(newer[j]))
			j++
		default:
			out = append(out, copyChange(newer[j]))
			i++
			j++
		}
	}
	return out
}

func less(a, b abi.Change) bool { return a.Row < b.Row || a.Row == b.Row && a.Col < b.Col }

func copyChange(c abi.Change) abi.Change {
	c.Value = slices.Clone(c.Value)
	return c
}

// apply builds in s.scratch the batch with the changes applied.
func (s *Session) apply(batch *abi.Batch, changes []abi.Change) *abi.Batch {
	s.scratch.Reset(batch.Kind, batch.Columns)
	s.scratch.Session = batch.Session
	k := 0
	for r := 0; r < batch.Rows(); r++ {
		for c := range batch.Columns {
			if k < len(changes) && changes[k].Row == r && changes[k].Col == c {
				s.scratch.Append(changes[k].Value, changes[k].Null)
				k++
				continue
			}
			s.scratch.Append(batch.Value(r, c))
		}
	}
	return &s.scratch
}

// instance returns the session's instance of u, taking a fresh one from
// the pool on first use or after a fault.
func (u *use) instance(ctx context.Context) (*host.Instance, error) {
	if u.inst != nil {
		return u.inst, nil
	}
	inst, err := u.b.pool.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", u.b.name, err)
	}
	u.inst = inst
	return inst, nil
}

// fault discards the instance after a failed call.
func (u *use) fault(err error) error {
	u.b.pool.release(u.inst)
	u.inst = nil
	var f *host.Fault
	if errors.As(err, &f) {
		return &Fault{Module: u.b.name, Fault: f}
	}
	return &Fault{Module: u.b.name, Fault: &host.Fault{Module: u.b.name, SHA256: u.b.mod.SHA256(), Reason: "trap", Err: err}}
}

// Close discards the session's instances.
func (s *Session) Close() {
	if s == nil {
		return
	}
	for _, u := range slices.Concat(s.policies, s.maskers) {
		if u.inst != nil {
			u.b.pool.release(u.inst)
			u.inst = nil
		}
	}
}

// pool keeps up to max live instances of one binding, warmInstances of
// them fresh and idle.
type pool struct {
	mod    *host.Module
	config []byte
	log    *slog.Logger
	slots  chan struct{} // one token per live instance
	warm   chan *host.Instance

	mu      sync.Mutex
	filling bool
	closed  bool
	filler  sync.WaitGroup
}

func newPool(mod *host.Module, config []byte, max int, log *slog.Logger) *pool {
	return &pool{mod: mod, config: config, log: log.With("module", mod.Name()),
		slots: make(chan struct{}, max), warm: make(chan *host.Instance, warmInstances)}
}

// instantiate makes an instance, taking a slot.
func (p *pool) instantiate(ctx context.Context) (*host.Instance, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	inst, err := p.mod.Instantiate(ctx, p.config, p.log)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return inst, nil
}

func (p *pool) put(inst *host.Instance) {
	select {
	case p.warm <- inst:
	default:
		p.release(inst)
	}
}

// get returns a fresh instance: a warm one, or a new one, waiting for a
// slot when max are live.
func (p *pool) get(ctx context.Context) (*host.Instance, error) {
	defer p.refill()
	select {
	case inst := <-p.warm:
		return inst, nil
	default:
	}
	deadline := time.NewTimer(acquireTimeout)
	defer deadline.Stop()
	for {
		inst, err := p.instantiate(ctx)
		if !errors.Is(err, ErrBusy) {
			return inst, err
		}
		select {
		case inst := <-p.warm:
			return inst, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("%w: %d instances live", ErrBusy, cap(p.slots))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// release discards an instance and frees its slot.
func (p *pool) release(inst *host.Instance) {
	_ = inst.Close(context.Background())
	<-p.slots
	p.refill()
}

// refill tops the warm instances up in the background.
func (p *pool) refill() {
	p.mu.Lock()
	if p.filling || p.closed || len(p.warm) >= cap(p.warm) {
		p.mu.Unlock()
		return
	}
	p.filling = true
	p.filler.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.filler.Done()
		defer func() {
			p.mu.Lock()
			p.filling = false
			p.mu.Unlock()
		}()
		for len(p.warm) < cap(p.warm) {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			inst, err := p.instantiate(context.Background())
			if err != nil {
				if !errors.Is(err, ErrBusy) {
					p.log.Error("starting a module instance", "error", err)
				}
				return
			}
			p.put(inst)
		}
	}()
}

// close stops refilling, waits for an instantiation under way, discards
// the warm instances and returns how many instances sessions still hold.
func (p *pool) close(ctx context.Context) int {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.filler.Wait()
	for {
		select {
		case inst := <-p.warm:
			_ = inst.Close(ctx)
			<-p.slots
		default:
			return len(p.slots)
		}
	}
}
