package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Bounds on what a session tracks of its prepared statements and portals.
// Statement texts are kept so that an Execute can be recorded with its
// SQL; past these bounds texts are recorded as untracked.
const (
	maxTrackedNames     = 10000
	maxTrackedTextBytes = 8 << 20
	pendingQueueSize    = 4096
	untrackedText       = "(statement text not tracked: too many prepared statements)"
)

// item is a request waiting for its completion from the server.
type item struct {
	// 'Q' simple query, 'E' execute, 'S' sync, 'F' function call,
	// 'D' describe, 'P' a Parse that policy refused.
	kind byte
	rec  protocol.RequestRecord
	// rows counts DataRows since the last CommandComplete; total sums
	// the rows of a multi-statement simple query.
	rows, total int64
	failed      bool
	// denied is set when policy refused the request: the server was sent
	// a statement that fails in its place, and its error is replaced by
	// this one.
	denied *refusal
	// For 'E': the portal executed and what it was bound to; for 'D':
	// the statement ('S') or portal ('P') described.
	target  byte
	name    string
	gen     uint64
	binding *binding
	// unmarks, on a Sync, are the statements needing review that its
	// batch closed or replaced (see marks).
	unmarks map[string]*holdStart
}

// refusal is the error a client gets for a request policy refused. review
// is set when policy asked for approval: the request may be held instead
// (hold.go).
type refusal struct {
	code, msg string
	review    *abi.Verdict
}

// binding is what a portal was bound to: the statement (by name and
// generation) and the result format codes.
type binding struct {
	stmt    string
	stmtGen uint64
	gen     uint64
	formats []int16
}

// tracker follows statements through the relay to record each with its
// outcome. The client side (client) runs on the fromClient goroutine, the
// server side (server, row, flush) on fromUpstream; they meet only through
// the channel.
type tracker struct {
	s  *clientSession
	ch chan *item

	// client side
	stmts     map[string]string
	portals   map[string]string
	textBytes int
	// Generations tell a statement or portal from an earlier one of the
	// same name, so that a stale description is never used.
	stmtGens   map[string]uint64
	portalBind map[string]*binding
	gen        uint64
	// marks are the prepared statements whose Parse needed review: each
	// Bind of one is held again (hold.go). It is shared with the server
	// side, which confirms or undoes their removal.
	marks marks
	// unmarked are the marked statements this batch (since the last Sync)
	// closed or replaced: later Binds in the batch are not held, since
	// the server skips them if the Close or Parse failed.
	unmarked map[string]*holdStart
	// start is set by client when the message starts a held batch.
	start *holdStart
	// While a held batch is replayed: presets are its Parses' verdicts,
	// and the Executes of releaseStmt record releaseReview.
	replaying                  bool
	presets                    []*refusal
	releaseReview, releaseStmt string

	// server side
	queue []*item
	done  []protocol.RequestRecord
	descs descriptions
	// batchFailed is set by an ErrorResponse in an extended-protocol
	// batch: the server skipped the rest of it up to the Sync.
	batchFailed bool
}

// marks are the statements needing review, by name. A Close of one (or a
// Parse replacing the unnamed one) removes it from byName at once, for the
// rest of its batch, but keeps it in pending until the server has run
// that batch's Sync: if anything in the batch failed, the Close or Parse
// may not have run, and the mark comes back. Until then a Bind of it in a
// later batch is held, as if it were still marked.
type marks struct {
	mu      sync.Mutex
	byName  map[string]*holdStart
	pending map[string]*holdStart
}

// get returns the mark of a statement a Bind in the current batch refers
// to; unmarked are the batch's own removals.
func (m *marks) get(name string, unmarked map[string]*holdStart) *holdStart {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.byName[name]; st != nil {
		return st
	}
	if _, own := unmarked[name]; !own {
		return m.pending[name]
	}
	return nil
}

// any reports whether a statement is marked or its unmarking unsettled.
func (m *marks) any() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byName) > 0 || len(m.pending) > 0
}

// matches reports whether a name SQL EXECUTE names is a statement marked,
// or whose unmarking is unsettled (unmarked: the current batch's own).
func (m *marks) matches(name string, unmarked map[string]*holdStart) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n := range m.byName {
		if sameName(n, name) {
			return true
		}
	}
	for n := range m.pending {
		if _, own := unmarked[n]; !own && sameName(n, name) {
			return true
		}
	}
	return false
}

func (m *marks) set(name string, st *holdStart) {
	m.mu.Lock()
	m.byName[name] = st
	m.mu.Unlock()
}

func (m *marks) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byName)
}

// remove takes a mark off for the rest of the batch and returns it (nil
// when the statement was not marked). A mark an earlier batch removed,
// not yet settled, is removed for this batch too (a pipelining client's
// next batch replacing the unnamed statement again).
func (m *marks) remove(name string) *holdStart {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.byName[name]
	if st == nil {
		return m.pending[name]
	}
	delete(m.byName, name)
	m.pending[name] = st
	return st
}

// settle ends the removals of a batch once the server has run its Sync:
// confirmed when nothing in it failed, undone otherwise.
func (m *marks) settle(unmarks map[string]*holdStart, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, st := range unmarks {
		if m.pending[name] == st {
			delete(m.pending, name)
		}
		if _, again := m.byName[name]; failed && !again {
			m.byName[name] = st
		}
	}
}

func newTracker(s *clientSession) *tracker {
	return &tracker{
		s:          s,
		ch:         make(chan *item, pendingQueueSize),
		stmts:      map[string]string{},
		portals:    map[string]string{},
		stmtGens:   map[string]uint64{},
		portalBind: map[string]*binding{},
		descs:      newDescriptions(),

		marks:    marks{byName: map[string]*holdStart{}, pending: map[string]*holdStart{}},
		unmarked: map[string]*holdStart{},
	}
}

// sentinel replaces a refused statement: it fails at parse time in the
// server, which then answers with an error and skips the rest of the
// extended-protocol batch exactly as for any failed statement; the error
// is replaced with the refusal before it reaches the client.
const sentinel = "gatewayd refused this statement"

// verdict asks the core to admit a request. It returns the refusal to
// answer with, or an error that ends the session.
func (t *tracker) verdict(ctx context.Context, kind abi.FrameKind, text string, attrs []abi.Attr) (*refusal, error) {
	if t.replaying && kind == abi.SQLParse && len(t.presets) > 0 {
		r := t.presets[0]
		t.presets = t.presets[1:]
		return r, nil
	}
	if kind == abi.SQLQuery || kind == abi.SQLParse {
		if r := t.executesMarked(text); r != nil {
			return r, nil
		}
	}
	resp, err := t.s.host.Admit(ctx, protocol.AdmitRequest{SessionID: t.s.sessionID, Kind: kind, Text: text, Attrs: attrs})
	if err != nil {
		t.s.log.Error("request refused: gateway cannot admit it", "error", err)
		return nil, &fatalError{code: codeSystemError, msg: "gatewayd cannot record statements now (audit log unavailable); statement refused", cause: err}
	}
	v := resp.Verdict
	switch v.Action {
	case abi.Allow:
		return nil, nil
	case abi.Deny:
		return &refusal{code: codeInsufficientPrivilege, msg: "gatewayd policy denied the statement: " + v.Reason}, nil
	case abi.Review:
		msg := "gatewayd policy requires approval for the statement: " + v.Reason
		if len(v.Reviewers) > 0 {
			msg += " (reviewers: " + strings.Join(v.Reviewers, ", ") + ")"
		}
		return &refusal{code: codeInsufficientPrivilege, msg: msg + "; it cannot be held for approval here, so it was not run", review: &v}, nil
	default: // Terminate, or anything a newer core may add: end the session.
		return nil, &fatalError{code: codeInsufficientPrivilege, msg: "gatewayd policy ended the session: " + v.Reason}
	}
}

// client observes one client message before it is forwarded, and returns
// the body to forward instead when policy refused it (nil: forward body).
// An error ends the session.
func (t *tracker) client(ctx context.Context, typ byte, body []byte) ([]byte, error) {
	switch typ {
	case 'Q':
		text, _, ok := cstring(body)
		if !ok {
			return nil, malformed("Query")
		}
		it := &item{kind: 'Q', rec: t.record("query", text)}
		r, err := t.verdict(ctx, abi.SQLQuery, text, nil)
		if err != nil {
			return nil, err
		}
		if r != nil && r.review != nil && t.s.holder != nil {
			res, err := t.s.holdAndWait(ctx, "query", text, nil, nil, r.review.Reviewers, r.review.Reason)
			if err != nil {
				return nil, err
			}
			it.rec.Started = time.Now()
			it.rec.ReviewID = res.reviewID
			r = res.refusal
		}
		if r != nil {
			it.denied = r
			return append([]byte(sentinel), 0), t.push(ctx, it)
		}
		return nil, t.push(ctx, it)
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			return nil, malformed("Parse")
		}
		text, types, ok := cstring(rest)
		if !ok {
			return nil, malformed("Parse")
		}
		r, err := t.verdict(ctx, abi.SQLParse, text, nil)
		if err != nil {
			return nil, err
		}
		if r != nil && r.review != nil && t.s.holder != nil && !t.replaying {
			t.start = &holdStart{stmt: name, text: text, types: bytes.Clone(types), reviewers: r.review.Reviewers, reason: r.review.Reason}
			return nil, nil
		}
		if name == "" {
			// A Parse of the unnamed statement replaces it. A named one
			// cannot be parsed again before it is closed: the server
			// refuses it and the marked statement stays.
			t.unmark(name)
		}
		t.setStatement(name, text)
		t.bumpStatement(name)
		if r != nil {
			it := &item{kind: 'P', rec: t.record("parse", text), denied: r}
			// The same name, the sentinel, no parameter types.
			sub := append(append([]byte(name), 0), sentinel...)
			sub = append(sub, 0, 0, 0)
			return sub, t.push(ctx, it)
		}
	case 'B':
		b, err := parseBind(body)
		if err != nil {
			return nil, err
		}
		if st := t.marks.get(b.stmt, t.unmarked); st != nil && !t.replaying {
			t.start = st
			return nil, nil
		}
		text, known := t.stmts[b.stmt]
		if !known {
			text = untrackedText
		}
		if _, exists := t.portals[b.portal]; exists || len(t.portals) < maxTrackedNames {
			t.portals[b.portal] = text
			t.gen++
			t.portalBind[b.portal] = &binding{stmt: b.stmt, stmtGen: t.stmtGens[b.stmt], gen: t.gen, formats: b.formats}
		}
	case 'D':
		if len(body) < 2 || body[0] != 'S' && body[0] != 'P' {
			return nil, malformed("Describe")
		}
		name, _, ok := cstring(body[1:])
		if !ok {
			return nil, malformed("Describe")
		}
		it := &item{kind: 'D', target: body[0], name: name}
		if body[0] == 'S' {
			it.gen = t.stmtGens[name]
		} else if b := t.portalBind[name]; b != nil {
			it.gen = b.gen
		}
		return nil, t.push(ctx, it)
	case 'E':
		portal, _, ok := cstring(body)
		if !ok {
			return nil, malformed("Execute")
		}
		text, known := t.portals[portal]
		if !known {
			text = untrackedText
		}
		// Policy saw the statement at Parse; only the gateway's own checks
		// (the audit log can be written) apply here.
		if _, err := t.verdict(ctx, 0, text, nil); err != nil {
			return nil, err
		}
		it := &item{kind: 'E', rec: t.record("execute", text), name: portal, binding: t.portalBind[portal]}
		if t.releaseReview != "" && it.binding != nil && it.binding.stmt == t.releaseStmt {
			it.rec.ReviewID = t.releaseReview
		}
		return nil, t.push(ctx, it)
	case 'C':
		if len(body) < 2 {
			return nil, malformed("Close")
		}
		name, _, ok := cstring(body[1:])
		if !ok {
			return nil, malformed("Close")
		}
		switch body[0] {
		case 'S':
			t.setStatement(name, "")
			delete(t.stmts, name)
			t.unmark(name)
			t.bumpStatement(name)
		case 'P':
			delete(t.portals, name)
			delete(t.portalBind, name)
		default:
			return nil, malformed("Close")
		}
	case 'F':
		if len(body) < 4 {
			return nil, malformed("FunctionCall")
		}
		oid := strconv.FormatUint(uint64(binary.BigEndian.Uint32(body)), 10)
		it := &item{kind: 'F', rec: t.record("function_call", "function oid "+oid)}
		r, err := t.verdict(ctx, abi.SQLFunctionCall, "", []abi.Attr{{Key: "function_oid", Value: oid}})
		if err != nil {
			return nil, err
		}
		if r != nil {
			it.denied = r
			// Function OID 0 does not exist: the server answers with an
			// error, replaced by the refusal.
			return []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, t.push(ctx, it)
		}
		return nil, t.push(ctx, it)
	case 'S':
		return nil, t.push(ctx, t.syncItem())
	}
	return nil, nil
}

// unmark removes a statement's mark for the rest of the batch; the Sync
// settles it (see marks).
func (t *tracker) unmark(name string) {
	if st := t.marks.remove(name); st != nil {
		t.unmarked[name] = st
	}
}

// syncItem is the item of a Sync, carrying its batch's removed marks.
func (t *tracker) syncItem() *item {
	it := &item{kind: 'S'}
	if len(t.unmarked) > 0 {
		it.unmarks = t.unmarked
		t.unmarked = map[string]*holdStart{}
	}
	return it
}

// bumpStatement gives the statement name a new generation: descriptions of
// the old one no longer apply.
func (t *tracker) bumpStatement(name string) {
	if _, ok := t.stmtGens[name]; ok || len(t.stmtGens) < maxTrackedNames {
		t.gen++
		t.stmtGens[name] = t.gen
	}
}

// bind is the part of a Bind message the gateway needs.
type bind struct {
	portal, stmt string
	formats      []int16
}

// parseBind reads a Bind body up to its result format codes.
func parseBind(body []byte) (bind, error) {
	var b bind
	var ok bool
	b.portal, body, ok = cstring(body)
	if !ok {
		return b, malformed("Bind")
	}
	b.stmt, body, ok = cstring(body)
	if !ok {
		return b, malformed("Bind")
	}
	n, body, ok := int16s(body)
	if !ok || len(body) < 2*n {
		return b, malformed("Bind")
	}
	body = body[2*n:]
	np, body, ok := int16s(body)
	if !ok {
		return b, malformed("Bind")
	}
	for range np {
		if len(body) < 4 {
			return b, malformed("Bind")
		}
		l := int32(binary.BigEndian.Uint32(body))
		body = body[4:]
		if l > 0 {
			if int(l) > len(body) {
				return b, malformed("Bind")
			}
			body = body[l:]
		}
	}
	nr, body, ok := int16s(body)
	if !ok || len(body) < 2*nr {
		return b, malformed("Bind")
	}
	for i := range nr {
		f := int16(binary.BigEndian.Uint16(body[2*i:]))
		if f != 0 && f != 1 {
			return b, malformed("Bind")
		}
		b.formats = append(b.formats, f)
	}
	return b, nil
}

// int16s reads a non-negative Int16 count.
func int16s(b []byte) (int, []byte, bool) {
	if len(b) < 2 {
		return 0, b, false
	}
	n := int16(binary.BigEndian.Uint16(b))
	return int(n), b[2:], n >= 0
}

func (t *tracker) record(kind, text string) protocol.RequestRecord {
	return protocol.RequestRecord{SessionID: t.s.sessionID, Kind: kind, Text: text, Started: time.Now(), Rows: -1}
}

func (t *tracker) setStatement(name, text string) {
	if old, ok := t.stmts[name]; ok {
		t.textBytes -= len(old)
	} else if len(t.stmts) >= maxTrackedNames {
		return
	}
	if t.textBytes+len(text) > maxTrackedTextBytes {
		text = untrackedText
	}
	t.stmts[name] = text
	t.textBytes += len(text)
}

// push queues a request for its completion. Requests are queued before
// they are forwarded, so the server side always finds them.
func (t *tracker) push(ctx context.Context, it *item) error {
	select {
	case t.ch <- it:
		return nil
	default:
	}
	// The queue is full: let the server catch up before blocking.
	if err := t.s.uw.Flush(); err != nil {
		return errUpstreamClosed
	}
	select {
	case t.ch <- it:
		return nil
	case <-ctx.Done():
		return errShutdown
	}
}

// head returns the oldest request still waiting for the server.
func (t *tracker) head() *item {
	if len(t.queue) == 0 {
		select {
		case it := <-t.ch:
			t.queue = append(t.queue, it)
		default:
			return nil
		}
	}
	return t.queue[0]
}

func (t *tracker) pop() {
	t.queue[0] = nil
	t.queue = t.queue[1:]
	if len(t.queue) == 0 {
		t.queue = t.queue[:0:0]
	}
}

// row counts one DataRow.
func (t *tracker) row() {
	if it := t.head(); it != nil {
		it.rows++
	}
}

// server observes one message the server sent, before it goes to the
// client, and returns the body to send instead (nil: send body): the
// refusal in place of the error a refused request's sentinel caused.
func (t *tracker) server(typ byte, body []byte) []byte {
	it := t.head()
	if typ == 'E' && (it == nil || it.kind != 'Q') {
		// Even before its Sync was sent (a batch ended with Flush).
		t.batchFailed = true
	}
	if it == nil {
		return nil
	}
	switch typ {
	case 'C': // CommandComplete
		tag, _, _ := cstring(body)
		n, ok := tagRows(tag)
		if !ok {
			n = it.rows
		}
		it.rows = 0
		it.total += n
		it.rec.Tag = tag
		if it.kind == 'E' {
			t.finish(it, "ok")
			t.pop()
		}
	case 'I', 's': // EmptyQueryResponse, PortalSuspended
		if it.kind == 'E' {
			it.total += it.rows
			if typ == 's' {
				it.rec.Tag = "suspended"
			}
			t.finish(it, "ok")
			t.pop()
		}
	case 'V': // FunctionCallResponse
		if it.kind == 'F' {
			t.finish(it, "ok")
			t.pop()
		}
	case 'T', 'n': // RowDescription, NoData: the answer to a Describe
		if it.kind == 'D' {
			if typ == 'T' {
				t.descs.described(it, body)
			}
			t.pop()
		}
	case 'E': // ErrorResponse
		if it.denied != nil {
			it.rec.ErrorCode, it.rec.ErrorMessage = it.denied.code, it.denied.msg
			repl := errorBody(gatewayError("ERROR", it.denied.code, it.denied.msg))
			switch it.kind {
			case 'P', 'F':
				t.finish(it, "denied")
				t.pop()
			case 'Q':
				it.failed = true
			}
			return repl
		}
		code, msg := errorFields(body)
		for it.kind == 'D' { // a Describe of a statement that failed
			t.pop()
			if it = t.head(); it == nil {
				return nil
			}
		}
		switch it.kind {
		case 'E', 'F':
			it.rec.ErrorCode, it.rec.ErrorMessage = code, msg
			it.total += it.rows
			t.finish(it, "error")
			t.pop()
		case 'Q':
			if !it.failed {
				it.failed = true
				it.rec.ErrorCode, it.rec.ErrorMessage = code, msg
			}
		}
	case 'Z': // ReadyForQuery ends a simple query or a Sync.
		for it := t.head(); it != nil; it = t.head() {
			t.pop()
			if it.kind == 'S' {
				t.marks.settle(it.unmarks, t.batchFailed)
				t.batchFailed = false
			}
			switch it.kind {
			case 'Q':
				outcome := "ok"
				switch {
				case it.denied != nil:
					outcome = "denied"
				case it.failed:
					outcome = "error"
				}
				it.total += it.rows
				t.finish(it, outcome)
				return nil
			case 'E':
				// Skipped by the server after an earlier error.
				t.finish(it, "skipped")
			case 'P':
				// A refused Parse the server skipped after an earlier
				// error: it never ran either way.
				it.rec.ErrorCode, it.rec.ErrorMessage = it.denied.code, it.denied.msg
				t.finish(it, "denied")
			case 'S', 'F':
				return nil
			}
		}
	}
	return nil
}

// columns returns the description of the rows the head request is
// returning, or nil when it is not known.
func (t *tracker) columns() []column {
	it := t.head()
	if it == nil {
		return nil
	}
	switch it.kind {
	case 'Q':
		return t.descs.current
	case 'E':
		return t.descs.forExecute(it)
	}
	return nil
}

// rowDescription records the RowDescription of a simple query's statement.
func (t *tracker) rowDescription(body []byte) {
	if it := t.head(); it != nil && it.kind == 'Q' {
		t.descs.current = parseRowDescription(body, t.descs.current[:0])
	}
}

func (t *tracker) finish(it *item, outcome string) {
	it.rec.Outcome = outcome
	it.rec.Duration = time.Since(it.rec.Started)
	it.rec.Rows = it.total
	t.done = append(t.done, it.rec)
	t.s.requests.Add(1)
}

// flush hands finished requests to the core's audit trail.
func (t *tracker) flush(ctx context.Context) error {
	if len(t.done) == 0 {
		return nil
	}
	err := t.s.host.RecordRequests(ctx, t.done)
	clear(t.done)
	t.done = t.done[:0]
	if err != nil {
		t.s.log.Error("recording requests", "error", err)
		return &fatalError{code: codeSystemError, msg: "gatewayd cannot record statements now (audit log unavailable); session ended", cause: err}
	}
	return nil
}

// interruptAll records every request still waiting as interrupted. It runs
// after both relay goroutines have stopped.
func (t *tracker) interruptAll() {
	for it := t.head(); it != nil; it = t.head() {
		t.pop()
		if it.kind != 'S' {
			it.total += it.rows
			t.finish(it, "interrupted")
		}
	}
}

// tagRows reads the row count at the end of a command tag such as
// "SELECT 5", "INSERT 0 3" or "COPY 10".
func tagRows(tag string) (int64, bool) {
	i := strings.LastIndexByte(tag, ' ')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(tag[i+1:], 10, 64)
	return n, err == nil
}

// errorFields returns the SQLSTATE and message of an ErrorResponse body.
func errorFields(body []byte) (code, msg string) {
	for len(body) > 1 {
		f := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			break
		}
		switch f {
		case 'C':
			code = v
		case 'M':
			msg = v
		}
		body = rest
	}
	return code, msg
}

func malformed(what string) error {
	return &fatalError{code: codeProtocolViolation, msg: "invalid " + what + " message"}
}

// errorBody encodes an ErrorResponse and returns its body (without the
// type and length).
func errorBody(e *pgproto3.ErrorResponse) []byte {
	return appendMessage(nil, e)[5:]
}
