package abi

import (
	"encoding/binary"
	"math"
)

// writer helpers: every encoding is built by appending to a byte slice.

func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func appendStr(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// appendBytes is appendStr for a []byte, without converting it to a string
// (which copies values over 32 bytes to the heap).
func appendBytes(b, v []byte) []byte {
	b = appendU32(b, uint32(len(v)))
	return append(b, v...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = appendU32(b, uint32(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

// reader decodes a buffer; the first failure sticks and every later read
// returns zero values.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u32() uint32 {
	if r.bad || len(r.b) < 4 {
		r.bad = true
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.u32()
	if r.bad || uint64(n) > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.bytes()) }

// strAs is str returning old when it has the same bytes, without
// allocating: an instance sees its one session's strings on every call.
func (r *reader) strAs(old string) string {
	b := r.bytes()
	if string(b) == old {
		return old
	}
	return string(b)
}

// count reads a count of items each taking at least min bytes, refusing
// counts the rest of the buffer cannot hold (so no allocation is sized
// from an unchecked number).
func (r *reader) count(min int) int {
	n := r.u32()
	if r.bad || uint64(n)*uint64(min) > uint64(len(r.b)) {
		r.bad = true
		return 0
	}
	return int(n)
}

// strs decodes a strs into dst's storage, reusing its strings where they
// are equal.
func (r *reader) strs(dst []string) []string {
	n := r.count(4)
	old := dst
	dst = dst[:0]
	for i := 0; i < n && !r.bad; i++ {
		var prev string
		if i < len(old) {
			prev = old[i] // read before append overwrites it
		}
		dst = append(dst, r.strAs(prev))
	}
	return dst
}

func (r *reader) err() error {
	if r.bad {
		return ErrMalformed
	}
	return nil
}

// AppendSession appends the encoding of s.
func AppendSession(b []byte, s *Session) []byte {
	b = appendStr(b, s.ID)
	b = appendStr(b, s.Identity)
	b = appendStr(b, s.Email)
	b = appendStrs(b, s.Groups)
	b = appendStr(b, s.Connection)
	return appendStr(b, s.Protocol)
}

func (r *reader) session(s *Session) {
	s.ID = r.strAs(s.ID)
	s.Identity = r.strAs(s.Identity)
	s.Email = r.strAs(s.Email)
	s.Groups = r.strs(s.Groups)
	s.Connection = r.strAs(s.Connection)
	s.Protocol = r.strAs(s.Protocol)
}

// AppendRequest appends the policy input for req.
func AppendRequest(b []byte, req *Request) []byte {
	b = appendU32(b, uint32(req.Kind))
	b = AppendSession(b, &req.Session)
	b = appendStr(b, req.Text)
	b = appendU32(b, uint32(len(req.Statements)))
	for i := range req.Statements {
		st := &req.Statements[i]
		b = appendStr(b, st.Kind)
		b = appendStr(b, st.Object)
		b = appendStrs(b, st.Kinds)
		b = appendStrs(b, st.Tables)
		b = appendStrs(b, st.Functions)
		b = appendU32(b, uint32(st.Flags))
	}
	b = appendU32(b, uint32(len(req.Attrs)))
	for _, a := range req.Attrs {
		b = appendStr(b, a.Key)
		b = appendStr(b, a.Value)
	}
	return b
}

// DecodeRequest decodes a policy input into req, reusing its slices.
func DecodeRequest(b []byte, req *Request) error {
	r := reader{b: b}
	req.Kind = FrameKind(r.u32())
	r.session(&req.Session)
	req.Text = r.str()
	n := r.count(24)
	req.Statements = req.Statements[:0]
	for i := 0; i < n && !r.bad; i++ {
		var st Statement
		st.Kind = r.str()
		st.Object = r.str()
		st.Kinds = r.strs(nil)
		st.Tables = r.strs(nil)
		st.Functions = r.strs(nil)
		st.Flags = StatementFlags(r.u32())
		req.Statements = append(req.Statements, st)
	}
	n = r.count(8)
	req.Attrs = req.Attrs[:0]
	for i := 0; i < n && !r.bad; i++ {
		req.Attrs = append(req.Attrs, Attr{Key: r.str(), Value: r.str()})
	}
	return r.err()
}

// AppendVerdict appends the policy output v.
func AppendVerdict(b []byte, v *Verdict) []byte {
	b = appendU32(b, uint32(v.Action))
	b = appendStr(b, v.Reason)
	return appendStrs(b, v.Reviewers)
}

// DecodeVerdict decodes a policy output; an unknown action is malformed.
func DecodeVerdict(b []byte, v *Verdict) error {
	r := reader{b: b}
	v.Action = Action(r.u32())
	v.Reason = r.str()
	v.Reviewers = r.strs(v.Reviewers)
	if err := r.err(); err != nil {
		return err
	}
	if v.Action > Terminate {
		return ErrMalformed
	}
	return nil
}

// AppendInitResult appends the output of gw_init.
func AppendInitResult(b []byte, res *InitResult) []byte {
	b = appendU32(b, res.Status)
	b = appendU32(b, uint32(res.Subscribe))
	return appendStr(b, res.Message)
}

// DecodeInitResult decodes the output of gw_init.
func DecodeInitResult(b []byte, res *InitResult) error {
	r := reader{b: b}
	res.Status = r.u32()
	res.Subscribe = Subscription(r.u32())
	res.Message = r.str()
	return r.err()
}

// AppendBatch appends the masking input for batch, whose rows must be
// complete.
func AppendBatch(b []byte, batch *Batch) []byte {
	b = appendU32(b, uint32(batch.Kind))
	b = AppendSession(b, &batch.Session)
	b = appendU32(b, uint32(len(batch.Columns)))
	for _, c := range batch.Columns {
		b = appendStr(b, c.Name)
		b = appendU32(b, c.Type)
		b = appendU32(b, c.Format)
	}
	b = appendU32(b, uint32(batch.Rows()))
	return append(b, batch.vals...)
}

// DecodeBatch decodes a masking input into batch; its values alias buf.
func DecodeBatch(buf []byte, batch *Batch) error {
	r := reader{b: buf}
	batch.Kind = FrameKind(r.u32())
	r.session(&batch.Session)
	nc := r.count(12)
	old := batch.Columns
	batch.Columns = batch.Columns[:0]
	for i := 0; i < nc && !r.bad; i++ {
		var prev string
		if i < len(old) {
			prev = old[i].Name // read before append overwrites it
		}
		batch.Columns = append(batch.Columns, Column{Name: r.strAs(prev), Type: r.u32(), Format: r.u32()})
	}
	rows := r.u32()
	if r.bad {
		return ErrMalformed
	}
	if nc == 0 && rows != 0 || uint64(rows)*uint64(nc)*4 > uint64(len(r.b)) {
		return ErrMalformed
	}
	batch.vals = r.b
	batch.spans = batch.spans[:0]
	off := 0
	for i := 0; i < int(rows)*nc; i++ {
		if len(r.b)-off < 4 {
			return ErrMalformed
		}
		n := binary.LittleEndian.Uint32(r.b[off:])
		off += 4
		if n == math.MaxUint32 {
			batch.spans = append(batch.spans, span{0, -1})
			continue
		}
		if uint64(n) > uint64(len(r.b)-off) {
			return ErrMalformed
		}
		batch.spans = append(batch.spans, span{int32(off), int32(n)})
		off += int(n)
	}
	return nil
}

// AppendChanges appends the masking output c.
func AppendChanges(b []byte, c *Changes) []byte {
	b = appendU32(b, uint32(c.Action))
	b = appendStr(b, c.Reason)
	b = appendU32(b, uint32(len(c.List)))
	for _, ch := range c.List {
		b = appendU32(b, uint32(ch.Row))
		b = appendU32(b, uint32(ch.Col))
		if ch.Null {
			b = appendU32(b, math.MaxUint32)
			continue
		}
		b = appendBytes(b, ch.Value)
	}
	return b
}

// DecodeChanges decodes a masking output for a batch of rows × cols,
// refusing changes out of range or out of order. Values alias buf.
func DecodeChanges(buf []byte, c *Changes, rows, cols int) error {
	r := reader{b: buf}
	c.Action = Action(r.u32())
	c.Reason = r.str()
	n := r.count(12)
	c.List = c.List[:0]
	last := int64(-1)
	for i := 0; i < n && !r.bad; i++ {
		// In int64, so that no u32 turns negative where int has 32 bits.
		row, col := int64(r.u32()), int64(r.u32())
		if r.bad || row >= int64(rows) || col >= int64(cols) || row*int64(cols)+col <= last {
			return ErrMalformed
		}
		last = row*int64(cols) + col
		ch := Change{Row: int(row), Col: int(col)}
		if len(r.b) >= 4 && binary.LittleEndian.Uint32(r.b) == math.MaxUint32 {
			r.b = r.b[4:]
			ch.Null = true
		} else {
			ch.Value = r.bytes()
		}
		c.List = append(c.List, ch)
	}
	if err := r.err(); err != nil {
		return err
	}
	if c.Action != Allow && c.Action != Terminate {
		return ErrMalformed
	}
	return nil
}
