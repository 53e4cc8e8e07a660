package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Per-statement approval. When policy answers review for a statement and
// the host can hold requests (protocol.Holder), the statement is held, not
// forwarded:
//
//   - A simple Query is held where it is read: the client gets a
//     NoticeResponse naming the review at once, and fromClient waits for
//     the decision, then forwards exactly the Query it held, or the
//     refusal's sentinel in its place.
//   - In the extended protocol the statement's Parse (or a Bind of a
//     statement that needed review when it was parsed) starts a held
//     batch: it and every message after it up to the Sync (or Flush) are
//     kept, not forwarded. The review binds the statement's text and the
//     parameter sections of every Bind of it in the batch. Approved, the
//     kept messages go upstream byte for byte; refused, a Parse that fails
//     goes in their place and the client gets the refusal.
//
// A statement that was parsed under review stays marked: each later batch
// binding it is held again, so that one approval releases one execution.
// Anything the gateway cannot hold this way (COPY data or a simple Query
// inside a held batch, a batch past the size bound) ends the session
// rather than reach the server unreviewed.

// Bounds of a held batch.
const maxHeldMessages = 1000

// codeQueryCanceled answers a held statement whose review timed out;
// codeProgramLimit a batch too large to hold.
const (
	codeQueryCanceled = "57014"
	codeProgramLimit  = "54000"
)

// refusedName names the Parse that fails in place of a refused batch; it
// never creates a statement (its text does not parse).
const refusedName = "gatewayd refused"

// holdStart describes the message that starts a held batch.
type holdStart struct {
	stmt, text string
	// types is the rest of the statement's Parse after its text: the
	// parameter type OIDs, which decide what a Bind's bytes mean.
	types     []byte
	reviewers []string
	reason    string
}

// heldBatch is an extended-protocol batch waiting for approval.
type heldBatch struct {
	holdStart
	msgs    []heldMsg
	size    int
	presets []*refusal // the verdicts of the batch's Parses, in order
	binds   int        // Binds of the held statement
	params  []byte
	shown   []string
	// closed reports that the batch closes or redefines the held statement.
	closed bool
	// conflict, when set, refuses the whole batch.
	conflict string
}

type heldMsg struct {
	typ  byte
	body []byte
}

// holdResult is how a hold ended: released under reviewID, or refused.
type holdResult struct {
	reviewID string
	refusal  *refusal
}

// holdMessage keeps one message of a held batch.
func (s *clientSession) holdMessage(ctx context.Context, typ byte, body []byte) error {
	b := s.batch
	b.size += len(body) + 5
	if len(b.msgs) >= maxHeldMessages || b.size > s.h.opts.MaxMessageBytes {
		return &fatalError{code: codeProgramLimit, msg: "gatewayd cannot hold a batch this large for approval; the session was ended"}
	}
	first := len(b.msgs) == 0
	switch typ {
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			return malformed("Parse")
		}
		text, _, ok := cstring(rest)
		if !ok {
			return malformed("Parse")
		}
		var r *refusal
		if !first { // the held Parse runs if approved
			var err error
			if r, err = s.tracker.verdict(ctx, abi.SQLParse, text, nil); err != nil {
				return err
			}
			if r != nil && r.review != nil {
				b.conflict = "only one statement needing approval may be sent in one batch; the batch was not run"
			}
			if name == b.stmt {
				b.closed = true
			}
		}
		b.presets = append(b.presets, r)
	case 'B':
		bd, err := parseBind(body)
		if err != nil {
			return err
		}
		marked := s.tracker.marks.get(bd.stmt, s.tracker.unmarked) != nil
		switch {
		case bd.stmt == b.stmt && !b.closed:
			b.binds++
			rest := body[len(bd.portal)+1:] // statement name, formats, parameters, result formats
			b.params = binary.BigEndian.AppendUint32(b.params, uint32(len(rest)))
			b.params = append(b.params, rest...)
			b.shown = append(b.shown, showParams(body))
		case marked:
			b.conflict = "only one statement needing approval may be sent in one batch; the batch was not run"
		}
	case 'C':
		if len(body) > 1 && body[0] == 'S' {
			if name, _, ok := cstring(body[1:]); ok && name == b.stmt {
				b.closed = true
			}
		}
	}
	b.msgs = append(b.msgs, heldMsg{typ: typ, body: bytes.Clone(body)})
	return nil
}

// resolveBatch ends a held batch at its Sync or Flush (term): it waits for
// the review, then sends the batch or its refusal upstream.
func (s *clientSession) resolveBatch(ctx context.Context, term byte) error {
	b := s.batch
	s.batch = nil
	b.msgs = append(b.msgs, heldMsg{typ: term})
	if marked := s.tracker.marks.get(b.stmt, s.tracker.unmarked) != nil; !marked && s.tracker.marks.count() >= maxTrackedNames {
		// A statement that cannot be remembered could run again unreviewed.
		b.conflict = "too many prepared statements needing approval in this session; close some first"
	}
	if b.conflict != "" {
		return s.refuseBatch(ctx, b, &refusal{code: codeInsufficientPrivilege, msg: "gatewayd: " + b.conflict}, term)
	}
	if b.binds == 0 {
		// Parsed, not executed: the review comes with the parameters of
		// the Bind that executes it.
		return s.replay(ctx, b, "")
	}
	// The binding: the parameter types the statement was parsed with,
	// then the parameter sections of its Binds.
	params := binary.BigEndian.AppendUint32(nil, uint32(len(b.types)))
	params = append(append(params, b.types...), b.params...)
	shown := b.shown
	if t := showTypes(b.types); t != "" {
		shown = append([]string{t}, shown...)
	}
	res, err := s.holdAndWait(ctx, "execute", b.text, params, shown, b.reviewers, b.reason)
	if err != nil {
		return err
	}
	if res.refusal != nil {
		return s.refuseBatch(ctx, b, res.refusal, term)
	}
	return s.replay(ctx, b, res.reviewID)
}

// markReview remembers that the held statement needs a review each time
// it is bound. A Close or re-Parse of it later in the batch unmarks it
// only once the server has run the batch without error (see marks): a
// Parse of an existing name fails, and a Close after an error is skipped.
func (s *clientSession) markReview(b *heldBatch) {
	st := b.holdStart
	s.tracker.marks.set(b.stmt, &st)
}

// replay sends a held batch upstream as the client sent it, with the
// verdicts its Parses got when they were held.
func (s *clientSession) replay(ctx context.Context, b *heldBatch, reviewID string) error {
	t := s.tracker
	t.replaying, t.presets, t.releaseReview, t.releaseStmt = true, b.presets, reviewID, b.stmt
	defer func() { t.replaying, t.presets, t.releaseReview, t.releaseStmt = false, nil, "", "" }()
	for i, m := range b.msgs {
		out := m.body
		switch m.typ {
		case 'S':
			if _, err := t.client(ctx, 'S', nil); err != nil {
				return err
			}
		case 'H':
		default:
			o, err := t.client(ctx, m.typ, m.body)
			if err != nil {
				return err
			}
			if o != nil {
				out = o
			}
		}
		if i == 0 {
			// Marked once its own Parse (or Bind) has passed, before the
			// rest of the batch may close or replace it.
			s.markReview(b)
		}
		if err := writeHeader(s.uw, header{typ: m.typ, size: len(out)}); err != nil {
			return errUpstreamClosed
		}
		if _, err := s.uw.Write(out); err != nil {
			return errUpstreamClosed
		}
	}
	return nil
}

// refuseBatch sends, in place of a held batch, a Parse that fails and the
// batch's Sync or Flush: the server answers with an error (replaced with
// the refusal) and skips to the Sync, as for any failed batch.
func (s *clientSession) refuseBatch(ctx context.Context, b *heldBatch, r *refusal, term byte) error {
	t := s.tracker
	if err := t.push(ctx, &item{kind: 'P', rec: t.record("execute", b.text), denied: r}); err != nil {
		return err
	}
	sub := append(append([]byte(refusedName), 0), sentinel...)
	sub = append(sub, 0, 0, 0)
	if err := writeHeader(s.uw, header{typ: 'P', size: len(sub)}); err != nil {
		return errUpstreamClosed
	}
	if _, err := s.uw.Write(sub); err != nil {
		return errUpstreamClosed
	}
	if term == 'S' {
		if err := t.push(ctx, t.syncItem()); err != nil {
			return err
		}
	}
	if err := writeHeader(s.uw, header{typ: term}); err != nil {
		return errUpstreamClosed
	}
	return nil
}

// holdAndWait holds a statement for review: it tells the client which
// review it waits for, then waits for the decision while watching for the
// client leaving. An error ends the session (the client left); a refusal
// answers the statement.
func (s *clientSession) holdAndWait(ctx context.Context, request, text string, params []byte, shown, reviewers []string, reason string) (holdResult, error) {
	// A CancelRequest may come as soon as the review is visible: the wait
	// can be cancelled from before the review exists.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var cancelled atomic.Bool
	s.h.holds.Store(s.sessionID, func() { cancelled.Store(true); cancel() })
	defer s.h.holds.Delete(s.sessionID)
	resp, err := s.holder.Hold(ctx, protocol.HoldRequest{
		SessionID: s.sessionID, Request: request, Text: text, Params: params, ParamsShown: shown,
		Reviewers: reviewers, Reason: reason,
	})
	if err != nil {
		s.log.Error("holding a statement for review", "error", err)
		return holdResult{refusal: &refusal{code: codeInsufficientPrivilege,
			msg: "gatewayd policy requires approval for the statement, and it cannot be held for approval now; it was not run"}}, nil
	}
	if resp.Released {
		s.notice(fmt.Sprintf("gatewayd: running the statement approved in review %s; that approval is now used", resp.ReviewID))
		return holdResult{reviewID: resp.ReviewID}, nil
	}
	wait := time.Until(resp.Until).Round(time.Second)
	s.notice(fmt.Sprintf("gatewayd: the statement is held for approval in review %s (reviewers: %s); waiting up to %s",
		resp.ReviewID, strings.Join(resp.Reviewers, ", "), wait))
	s.log.Info("statement held for review", "review", resp.ReviewID)

	stop := s.watchClient(cancel)
	out, err := s.holder.AwaitHold(wctx, protocol.AwaitHoldRequest{SessionID: s.sessionID, ReviewID: resp.ReviewID})
	gone := stop()
	s.h.holds.Delete(s.sessionID)
	switch {
	case ctx.Err() != nil:
		return holdResult{}, errShutdown
	case gone:
		return holdResult{}, errClientClosed
	case cancelled.Load():
		// The client cancelled (psql's Ctrl-C): the review is withdrawn.
		return holdResult{refusal: &refusal{code: codeQueryCanceled, msg: fmt.Sprintf(
			"canceling statement due to user request: review %s was withdrawn and the statement was not run", resp.ReviewID)}}, nil
	case err != nil:
		s.log.Error("waiting for a review", "review", resp.ReviewID, "error", err)
		return holdResult{refusal: &refusal{code: codeInsufficientPrivilege,
			msg: fmt.Sprintf("gatewayd could not wait for review %s; the statement was not run", resp.ReviewID)}}, nil
	}
	switch out.Outcome {
	case protocol.HoldApproved:
		s.log.Info("held statement approved", "review", resp.ReviewID, "reviewer", out.Reviewer)
		return holdResult{reviewID: resp.ReviewID}, nil
	case protocol.HoldTimedOut:
		return holdResult{refusal: &refusal{code: codeQueryCanceled, msg: fmt.Sprintf(
			"gatewayd: review %s was not decided within %s, so the statement was not run; if it is approved later, you may run the same statement once more on this connection",
			resp.ReviewID, wait)}}, nil
	default:
		msg := fmt.Sprintf("gatewayd: review %s was denied", resp.ReviewID)
		if out.Reviewer != "" {
			msg += " by " + out.Reviewer
		}
		if out.Reason != "" {
			msg += ": " + out.Reason
		}
		return holdResult{refusal: &refusal{code: codeInsufficientPrivilege, msg: msg + "; the statement was not run"}}, nil
	}
}

// watchClient notices the client leaving while a statement is held: it
// peeks at the client's connection and calls gone when it ends (or sends
// Terminate). A client that pipelines more messages behind the held one
// is still watched: what it sends is read ahead into the session's buffer
// (left there for after the decision) until the connection ends; one that
// fills the buffer can no longer be watched and counts as gone, so that
// its statement never runs after it left unseen. stop ends the watch and
// reports whether the client left.
func (s *clientSession) watchClient(gone func()) (stop func() bool) {
	var stopping atomic.Bool
	done := make(chan bool, 1)
	go func() {
		left := false
		for n := 1; ; n = s.cr.Buffered() + 1 {
			b, err := s.cr.Peek(n)
			if err == nil && b[0] == 'X' || err != nil && !stopping.Load() || s.ending.Load() {
				left = true
				break
			}
			if err != nil {
				break
			}
		}
		if left {
			gone()
		}
		done <- left
	}()
	return func() bool {
		stopping.Store(true)
		_ = s.raw.SetReadDeadline(time.Now())
		left := <-done
		if !s.ending.Load() {
			_ = s.raw.SetReadDeadline(time.Time{})
		}
		return left || s.ending.Load()
	}
}

// notice sends a NoticeResponse to the client now, between two server
// messages.
func (s *clientSession) notice(msg string) {
	b := appendMessage(nil, &pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE",
		Code: "00000", Message: msg, Routine: "gatewayd"})
	s.cwMu.Lock()
	defer s.cwMu.Unlock()
	_, _ = s.cw.Write(b)
	_ = s.cw.Flush()
}

// showParams renders a Bind's parameters for reviewers: text values as
// they are, binary ones in hex, NULL as NULL.
func showParams(body []byte) string {
	_, body, _ = cstring(body)
	_, body, _ = cstring(body)
	n, body, ok := int16s(body)
	if !ok || len(body) < 2*n {
		return "?"
	}
	formats := make([]int16, n)
	for i := range n {
		formats[i] = int16(binary.BigEndian.Uint16(body[2*i:]))
	}
	body = body[2*n:]
	np, body, ok := int16s(body)
	if !ok {
		return "?"
	}
	vals := make([]string, 0, np)
	for i := range np {
		if len(body) < 4 {
			return "?"
		}
		l := int32(binary.BigEndian.Uint32(body))
		body = body[4:]
		if l < 0 {
			vals = append(vals, "NULL")
			continue
		}
		if int(l) > len(body) {
			return "?"
		}
		v := body[:l]
		body = body[l:]
		f := int16(0)
		switch {
		case len(formats) == 1:
			f = formats[0]
		case i < len(formats):
			f = formats[i]
		}
		if f == 1 {
			vals = append(vals, `\x`+hex.EncodeToString(v))
		} else {
			vals = append(vals, "'"+strings.ReplaceAll(string(v), "'", "''")+"'")
		}
	}
	return "(" + strings.Join(vals, ", ") + ")"
}

// showTypes renders a Parse's parameter type OIDs for reviewers, or ""
// when the Parse leaves every type to the server.
func showTypes(types []byte) string {
	n, body, ok := int16s(types)
	if !ok || len(body) < 4*n {
		return "parameter types: ?"
	}
	oids := make([]string, 0, n)
	specified := false
	for i := range n {
		oid := binary.BigEndian.Uint32(body[4*i:])
		specified = specified || oid != 0
		oids = append(oids, strconv.FormatUint(uint64(oid), 10))
	}
	if !specified {
		return ""
	}
	return "parameter type OIDs: (" + strings.Join(oids, ", ") + ")"
}
