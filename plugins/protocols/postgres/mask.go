package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Batches of values go to the masking modules at these bounds, or sooner
// when the server has nothing more buffered (rows are never held back
// waiting for more).
const (
	maxBatchRows  = 512
	maxBatchBytes = 256 << 10
)

// PostgreSQL type OID of text, for values whose type the gateway makes up
// (COPY lines, message fields, notification payloads).
const textOID = 25

// column is one column of a RowDescription.
type column struct {
	name   string
	typ    uint32
	format int16
}

// parseRowDescription reads a RowDescription body into dst.
func parseRowDescription(body []byte, dst []column) []column {
	n, body, ok := int16s(body)
	if !ok {
		return nil
	}
	for range n {
		name, rest, ok := cstring(body)
		if !ok || len(rest) < 18 {
			return nil
		}
		dst = append(dst, column{
			name:   name,
			typ:    binary.BigEndian.Uint32(rest[6:]),
			format: int16(binary.BigEndian.Uint16(rest[16:])),
		})
		body = rest[18:]
	}
	return dst
}

// description is a statement's or portal's RowDescription with the
// generation it was described at.
type description struct {
	gen  uint64
	cols []column
}

// descriptions are the row descriptions the server side has seen. They
// are kept so that an Execute with no RowDescription in its answer (a
// client that described the statement once, as pgx does) can be masked
// with its column names and types.
type descriptions struct {
	current []column // the last RowDescription of a simple query
	stmts   map[string]description
	portals map[string]description
}

func newDescriptions() descriptions {
	return descriptions{stmts: map[string]description{}, portals: map[string]description{}}
}

// described records the answer to a Describe item.
func (d *descriptions) described(it *item, body []byte) {
	m := d.stmts
	if it.target == 'P' {
		m = d.portals
	}
	if _, ok := m[it.name]; !ok && len(m) >= maxTrackedNames {
		return
	}
	m[it.name] = description{gen: it.gen, cols: parseRowDescription(body, nil)}
}

// forExecute returns the columns an Execute returns, or nil when unknown.
func (d *descriptions) forExecute(it *item) []column {
	b := it.binding
	if b == nil {
		return nil
	}
	if pd, ok := d.portals[it.name]; ok && pd.gen == b.gen {
		return pd.cols
	}
	sd, ok := d.stmts[b.stmt]
	if !ok || sd.gen != b.stmtGen {
		return nil
	}
	// A statement's description has format 0 everywhere; the Bind chose.
	cols := slices.Clone(sd.cols)
	for i := range cols {
		switch len(b.formats) {
		case 0:
			cols[i].format = 0
		case 1:
			cols[i].format = b.formats[0]
		default:
			if i < len(b.formats) {
				cols[i].format = b.formats[i]
			}
		}
	}
	return cols
}

// pending holds server messages of one kind waiting to be masked as a
// batch: DataRows or CopyData.
type pending struct {
	typ   byte // 'D' or 'd'
	batch abi.Batch
	cols  []abi.Column
	raw   []byte // the message bodies, back to back
	ends  []int
}

func (p *pending) empty() bool { return len(p.ends) == 0 }

func (p *pending) full() bool { return len(p.ends) >= maxBatchRows || len(p.raw) >= maxBatchBytes }

// errMaskColumns ends a session whose result rows cannot be described.
var errMaskColumns = &fatalError{code: codeSystemError,
	msg: "gatewayd cannot mask this result: its columns were not described (Describe the statement or portal before Execute when using binary results)"}

// readPending reads the body of h into the pending batch, first masking
// and sending what is pending when it holds messages of another type.
func (s *clientSession) readPending(ctx context.Context, h header) ([]byte, error) {
	p := &s.pending
	if !p.empty() && p.typ != h.typ {
		if err := s.flushPending(ctx); err != nil {
			return nil, err
		}
	}
	start := len(p.raw)
	p.raw = slices.Grow(p.raw, h.size)[:start+h.size]
	if _, err := io.ReadFull(s.ur, p.raw[start:]); err != nil {
		return nil, errUpstreamClosed
	}
	return p.raw[start:], nil
}

// pendRow adds a DataRow to the batch being masked.
func (s *clientSession) pendRow(ctx context.Context, h header) error {
	p := &s.pending
	body, err := s.readPending(ctx, h)
	if err != nil {
		return err
	}
	n, vals, ok := int16s(body)
	if !ok {
		return &fatalError{code: codeProtocolViolation, msg: "server sent an invalid DataRow"}
	}
	if p.empty() {
		p.typ = 'D'
		cols := s.tracker.columns()
		p.cols = p.cols[:0]
		if cols == nil {
			// Not described: only text results can be masked, as values of
			// unknown type.
			if it := s.tracker.head(); it == nil || it.kind != 'E' || it.binding == nil || slices.Contains(it.binding.formats, 1) {
				return errMaskColumns
			}
			for range n {
				p.cols = append(p.cols, abi.Column{})
			}
		}
		for _, c := range cols {
			p.cols = append(p.cols, abi.Column{Name: c.name, Type: c.typ, Format: uint32(c.format)})
		}
		p.batch.Reset(abi.Rows, p.cols)
	}
	if n != len(p.cols) {
		return &fatalError{code: codeProtocolViolation, msg: fmt.Sprintf("server sent a DataRow of %d columns for a result of %d", n, len(p.cols))}
	}
	for range n {
		if len(vals) < 4 {
			return &fatalError{code: codeProtocolViolation, msg: "server sent an invalid DataRow"}
		}
		l := int32(binary.BigEndian.Uint32(vals))
		vals = vals[4:]
		if l < 0 {
			p.batch.Append(nil, true)
			continue
		}
		if int(l) > len(vals) {
			return &fatalError{code: codeProtocolViolation, msg: "server sent an invalid DataRow"}
		}
		p.batch.Append(vals[:l], false)
		vals = vals[l:]
	}
	p.ends = append(p.ends, len(p.raw))
	if p.full() {
		return s.flushPending(ctx)
	}
	return nil
}

// pendCopy adds a CopyData message of a COPY ... TO STDOUT to the batch:
// each holds one row, masked as one text value.
func (s *clientSession) pendCopy(ctx context.Context, h header) error {
	p := &s.pending
	body, err := s.readPending(ctx, h)
	if err != nil {
		return err
	}
	if p.empty() {
		p.typ = 'd'
		p.cols = append(p.cols[:0], abi.Column{Type: textOID})
		p.batch.Reset(abi.Copy, p.cols)
	}
	p.batch.Append(body, false)
	p.ends = append(p.ends, len(p.raw))
	if p.full() {
		return s.flushPending(ctx)
	}
	return nil
}

// flushPending masks the pending batch and writes its messages out.
func (s *clientSession) flushPending(ctx context.Context) error {
	p := &s.pending
	if p.empty() {
		return nil
	}
	resp, err := s.host.Mask(ctx, protocol.MaskRequest{SessionID: s.sessionID, Batch: &p.batch})
	if err != nil {
		return s.maskFailed(err)
	}
	changes := resp.Changes
	start := 0
	for i, end := range p.ends {
		body := p.raw[start:end]
		start = end
		if len(changes) == 0 || changes[0].Row != i {
			if err := s.writeMessage(p.typ, body); err != nil {
				return err
			}
			continue
		}
		k := 0
		for k < len(changes) && changes[k].Row == i {
			k++
		}
		if err := s.writeChanged(p, i, changes[:k]); err != nil {
			return err
		}
		changes = changes[k:]
	}
	p.raw, p.ends = p.raw[:0], p.ends[:0]
	if cap(p.raw) > 2*maxBatchBytes {
		p.raw = nil // do not keep one huge row's buffer for the session's life
	}
	p.batch.Reset(abi.Rows, nil)
	return nil
}

// writeChanged writes row i of the pending batch with its changes.
func (s *clientSession) writeChanged(p *pending, i int, changes []abi.Change) error {
	buf := s.scratch[:0]
	if p.typ == 'd' {
		buf = append(buf, changes[0].Value...)
	} else {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(p.cols)))
		for c := range p.cols {
			v, null := p.batch.Value(i, c)
			if len(changes) > 0 && changes[0].Col == c {
				v, null = changes[0].Value, changes[0].Null
				changes = changes[1:]
			}
			if null {
				buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
			buf = append(buf, v...)
		}
	}
	s.scratch = buf
	if len(buf) > s.h.opts.MaxMessageBytes {
		return &fatalError{code: codeSystemError, msg: "gatewayd cannot send a masked row: it exceeds max_message_bytes"}
	}
	return s.writeMessage(p.typ, buf)
}

func (s *clientSession) writeMessage(typ byte, body []byte) error {
	if err := writeHeader(s.cw, header{typ: typ, size: len(body)}); err != nil {
		return errClientClosed
	}
	if _, err := s.cw.Write(body); err != nil {
		return errClientClosed
	}
	return nil
}

func (s *clientSession) maskFailed(err error) error {
	s.log.Error("masking failed: ending the session", "error", err)
	return &fatalError{code: codeSystemError, msg: "gatewayd ended the session: " + err.Error(), cause: err}
}

// Fields of ErrorResponse and NoticeResponse whose text may echo data, and
// the column names masking modules see them under.
var messageFields = []struct {
	code byte
	name string
}{
	{'M', "message"}, {'D', "detail"}, {'H', "hint"}, {'W', "where"}, {'q', "internal_query"},
}

// maskMessage masks the value-bearing fields of an ErrorResponse or
// NoticeResponse body and returns the body to send.
func (s *clientSession) maskMessage(ctx context.Context, body []byte) ([]byte, error) {
	type field struct {
		code byte
		val  []byte
		col  int // its column in the batch, -1 when not masked
	}
	var all []field
	var cols []abi.Column
	for f, v := range fields(body) {
		col := -1
		for _, mf := range messageFields {
			if f == mf.code {
				col = len(cols)
				cols = append(cols, abi.Column{Name: mf.name, Type: textOID})
			}
		}
		all = append(all, field{f, v, col})
	}
	if len(cols) == 0 {
		return body, nil
	}
	var b abi.Batch
	b.Reset(abi.Message, cols)
	for _, f := range all {
		if f.col >= 0 {
			b.Append(f.val, false)
		}
	}
	resp, err := s.host.Mask(ctx, protocol.MaskRequest{SessionID: s.sessionID, Batch: &b})
	if err != nil {
		return nil, s.maskFailed(err)
	}
	if len(resp.Changes) == 0 {
		return body, nil
	}
	out := make([]byte, 0, len(body)+64)
	for _, f := range all {
		v := f.val
		for _, ch := range resp.Changes {
			if ch.Col == f.col && f.col >= 0 {
				v = ch.Value // NULL: an empty field
			}
		}
		out = append(out, f.code)
		out = append(out, v...)
		out = append(out, 0)
	}
	return append(out, 0), nil
}

// fields iterates over the fields of an ErrorResponse or NoticeResponse
// body: a code byte and a NUL-terminated value each.
func fields(body []byte) func(yield func(byte, []byte) bool) {
	return func(yield func(byte, []byte) bool) {
		for len(body) > 1 && body[0] != 0 {
			f := body[0]
			end := slices.Index(body[1:], 0)
			if end < 0 {
				return
			}
			if !yield(f, body[1:1+end]) {
				return
			}
			body = body[2+end:]
		}
	}
}

// maskNotification masks the channel and payload of a
// NotificationResponse body.
func (s *clientSession) maskNotification(ctx context.Context, body []byte) ([]byte, error) {
	if len(body) < 4 {
		return nil, &fatalError{code: codeProtocolViolation, msg: "server sent an invalid NotificationResponse"}
	}
	channel, rest, ok := cstring(body[4:])
	payload, _, ok2 := cstring(rest)
	if !ok || !ok2 {
		return nil, &fatalError{code: codeProtocolViolation, msg: "server sent an invalid NotificationResponse"}
	}
	var b abi.Batch
	b.Reset(abi.Notification, []abi.Column{{Name: "channel", Type: textOID}, {Name: "payload", Type: textOID}})
	b.Append([]byte(channel), false)
	b.Append([]byte(payload), false)
	resp, err := s.host.Mask(ctx, protocol.MaskRequest{SessionID: s.sessionID, Batch: &b})
	if err != nil {
		return nil, s.maskFailed(err)
	}
	if len(resp.Changes) == 0 {
		return body, nil
	}
	vals := [][]byte{[]byte(channel), []byte(payload)}
	for _, ch := range resp.Changes {
		if !ch.Null {
			vals[ch.Col] = ch.Value
		}
	}
	out := append([]byte(nil), body[:4]...)
	out = append(append(out, vals[0]...), 0)
	return append(append(out, vals[1]...), 0), nil
}
