package postgres

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
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
	kind byte // 'Q' simple query, 'E' execute, 'S' sync, 'F' function call
	rec  protocol.RequestRecord
	// rows counts DataRows since the last CommandComplete; total sums
	// the rows of a multi-statement simple query.
	rows, total int64
	failed      bool
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

	// server side
	queue []*item
	done  []protocol.RequestRecord
}

func newTracker(s *clientSession) *tracker {
	return &tracker{
		s:       s,
		ch:      make(chan *item, pendingQueueSize),
		stmts:   map[string]string{},
		portals: map[string]string{},
	}
}

// client observes one client message before it is forwarded. An error
// ends the session.
func (t *tracker) client(ctx context.Context, typ byte, body []byte) error {
	switch typ {
	case 'Q':
		text, _, ok := cstring(body)
		if !ok {
			return malformed("Query")
		}
		return t.push(ctx, &item{kind: 'Q', rec: t.record("query", text)})
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			return malformed("Parse")
		}
		text, _, ok := cstring(rest)
		if !ok {
			return malformed("Parse")
		}
		t.setStatement(name, text)
	case 'B':
		portal, rest, ok := cstring(body)
		if !ok {
			return malformed("Bind")
		}
		stmt, _, ok := cstring(rest)
		if !ok {
			return malformed("Bind")
		}
		text, known := t.stmts[stmt]
		if !known {
			text = untrackedText
		}
		if _, exists := t.portals[portal]; exists || len(t.portals) < maxTrackedNames {
			t.portals[portal] = text
		}
	case 'E':
		portal, _, ok := cstring(body)
		if !ok {
			return malformed("Execute")
		}
		text, known := t.portals[portal]
		if !known {
			text = untrackedText
		}
		return t.push(ctx, &item{kind: 'E', rec: t.record("execute", text)})
	case 'C':
		if len(body) < 2 {
			return malformed("Close")
		}
		name, _, ok := cstring(body[1:])
		if !ok {
			return malformed("Close")
		}
		switch body[0] {
		case 'S':
			t.setStatement(name, "")
			delete(t.stmts, name)
		case 'P':
			delete(t.portals, name)
		default:
			return malformed("Close")
		}
	case 'F':
		if len(body) < 4 {
			return malformed("FunctionCall")
		}
		oid := binary.BigEndian.Uint32(body)
		return t.push(ctx, &item{kind: 'F', rec: t.record("function_call", "function oid "+strconv.FormatUint(uint64(oid), 10))})
	case 'S':
		return t.push(ctx, &item{kind: 'S'})
	}
	return nil
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

// push admits a request and queues it for its completion. Requests are
// queued before they are forwarded, so the server side always finds them.
func (t *tracker) push(ctx context.Context, it *item) error {
	if it.kind != 'S' {
		if err := t.s.host.Admit(ctx, protocol.AdmitRequest{SessionID: t.s.sessionID, Text: it.rec.Text}); err != nil {
			t.s.log.Error("request refused: gateway cannot admit it", "error", err)
			return &fatalError{code: codeSystemError, msg: "gatewayd cannot record statements now (audit log unavailable); statement refused", cause: err}
		}
	}
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

// server observes one completion or error message from the server.
func (t *tracker) server(typ byte, body []byte) {
	it := t.head()
	if it == nil {
		return
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
	case 'E': // ErrorResponse
		code, msg := errorFields(body)
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
			switch it.kind {
			case 'Q':
				outcome := "ok"
				if it.failed {
					outcome = "error"
				}
				it.total += it.rows
				t.finish(it, outcome)
				return
			case 'E':
				// Skipped by the server after an earlier error.
				t.finish(it, "skipped")
			case 'S', 'F':
				return
			}
		}
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
