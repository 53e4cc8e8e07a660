package abi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func sampleSession() Session {
	return Session{ID: "0b6c1a2e", Identity: "ada", Email: "ada@example.com",
		Groups: []string{"eng", "dba"}, Connection: "app-pg", Protocol: "postgres"}
}

func sampleRequest() Request {
	return Request{
		Kind:    SQLQuery,
		Session: sampleSession(),
		Text:    "DELETE FROM t; COPY u TO PROGRAM 'x'",
		Statements: []Statement{
			{Kind: "DELETE", Kinds: []string{"DELETE"}, Tables: []string{"public.t"}},
			{Kind: "COPY", Object: "TABLE", Kinds: []string{"COPY", "SELECT"}, Tables: []string{"u"},
				Functions: []string{"pg_catalog.now"}, Flags: CopyTo | CopyProgram},
		},
		Attrs: []Attr{{Key: "function_oid", Value: "1234"}, {Key: "name", Value: ""}},
	}
}

func sampleBatch() Batch {
	var b Batch
	b.Session = sampleSession()
	b.Reset(Rows, []Column{{Name: "id", Type: 23}, {Name: "note", Type: 25}, {Name: "blob", Type: 17, Format: 1}})
	for _, v := range []struct {
		s    string
		null bool
	}{{"1", false}, {"EMP-123456", false}, {"\x00\xff", false}, {"2", false}, {"", false}, {"", true}} {
		b.Append([]byte(v.s), v.null)
	}
	return b
}

func sampleChanges() Changes {
	return Changes{Action: Terminate, Reason: "too much", List: []Change{
		{Row: 0, Col: 1, Value: []byte("EMP-******")},
		{Row: 0, Col: 2, Null: true},
		{Row: 1, Col: 0, Value: []byte{}},
	}}
}

// encodings lists one valid encoding of each kind with its decoder.
func encodings() []struct {
	name   string
	enc    []byte
	decode func([]byte) error
} {
	req, v, b, c := sampleRequest(), Verdict{Action: Review, Reason: "held", Reviewers: []string{"dba"}}, sampleBatch(), sampleChanges()
	res := InitResult{Status: 1, Subscribe: Subscribe(Rows, SQLQuery), Message: "bad config"}
	return []struct {
		name   string
		enc    []byte
		decode func([]byte) error
	}{
		{"request", AppendRequest(nil, &req), func(p []byte) error { var r Request; return DecodeRequest(p, &r) }},
		{"verdict", AppendVerdict(nil, &v), func(p []byte) error { var v Verdict; return DecodeVerdict(p, &v) }},
		{"init result", AppendInitResult(nil, &res), func(p []byte) error { var r InitResult; return DecodeInitResult(p, &r) }},
		{"batch", AppendBatch(nil, &b), func(p []byte) error { var b Batch; return DecodeBatch(p, &b) }},
		{"changes", AppendChanges(nil, &c), func(p []byte) error { var c Changes; return DecodeChanges(p, &c, 2, 3) }},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, want := range []Request{sampleRequest(), {Kind: ShellExec}} {
		var got Request
		if err := DecodeRequest(AppendRequest(nil, &want), &got); err != nil {
			t.Fatal(err)
		}
		normalize(&want)
		normalize(&got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	}
}

// normalize makes empty slices nil, for comparing decoded values.
func normalize(r *Request) {
	if len(r.Session.Groups) == 0 {
		r.Session.Groups = nil
	}
	if len(r.Statements) == 0 {
		r.Statements = nil
	}
	for i := range r.Statements {
		st := &r.Statements[i]
		for _, ss := range []*[]string{&st.Kinds, &st.Tables, &st.Functions} {
			if len(*ss) == 0 {
				*ss = nil
			}
		}
	}
	if len(r.Attrs) == 0 {
		r.Attrs = nil
	}
}

// TestRequestReuse: decoding into a used Request leaves nothing of the
// previous one.
func TestRequestReuse(t *testing.T) {
	big, small := sampleRequest(), Request{Kind: SQLParse, Text: "SELECT 1"}
	var got Request
	if err := DecodeRequest(AppendRequest(nil, &big), &got); err != nil {
		t.Fatal(err)
	}
	if err := DecodeRequest(AppendRequest(nil, &small), &got); err != nil {
		t.Fatal(err)
	}
	normalize(&got)
	if !reflect.DeepEqual(got, small) {
		t.Errorf("got %+v, want %+v", got, small)
	}
}

func TestVerdictRoundTrip(t *testing.T) {
	for _, want := range []Verdict{
		{},
		{Action: Deny, Reason: "no DROP"},
		{Action: Review, Reason: "held", Reviewers: []string{"dba", "sre"}},
		{Action: Terminate, Reason: "bye"},
	} {
		var got Verdict
		if err := DecodeVerdict(AppendVerdict(nil, &want), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Reviewers) == 0 {
			got.Reviewers = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

func TestInitResultRoundTrip(t *testing.T) {
	for _, want := range []InitResult{{}, {Subscribe: 0xffffffff}, {Status: 7, Message: "keep_last: not a number"}} {
		var got InitResult
		if err := DecodeInitResult(AppendInitResult(nil, &want), &got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

func TestBatchRoundTrip(t *testing.T) {
	want := sampleBatch()
	var got Batch
	enc := AppendBatch(nil, &want)
	if err := DecodeBatch(enc, &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != want.Kind || !reflect.DeepEqual(got.Session, want.Session) || !reflect.DeepEqual(got.Columns, want.Columns) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got.Rows() != 2 || got.Size() != want.Size() {
		t.Fatalf("got %d rows of %d bytes, want 2 of %d", got.Rows(), got.Size(), want.Size())
	}
	for row := range 2 {
		for col := range 3 {
			gv, gn := got.Value(row, col)
			wv, wn := want.Value(row, col)
			if !bytes.Equal(gv, wv) || gn != wn || (gv == nil) != (wv == nil) {
				t.Errorf("(%d, %d): got %q null=%v, want %q null=%v", row, col, gv, gn, wv, wn)
			}
		}
	}
	// An empty value is not NULL.
	if v, null := got.Value(1, 1); null || v == nil {
		t.Errorf("empty value: got %q null=%v", v, null)
	}
	// Re-encoding a decoded batch gives the same bytes.
	if again := AppendBatch(nil, &got); !bytes.Equal(again, enc) {
		t.Error("re-encoding a decoded batch changed it")
	}
}

func TestBatchEmpty(t *testing.T) {
	for _, cols := range [][]Column{nil, {{Name: "a"}}} {
		var b, got Batch
		b.Reset(Output, cols)
		if err := DecodeBatch(AppendBatch(nil, &b), &got); err != nil || got.Rows() != 0 || len(got.Columns) != len(cols) {
			t.Errorf("%d columns: got %d rows, %d columns, %v", len(cols), got.Rows(), len(got.Columns), err)
		}
	}
}

// TestBatchReset: a reset batch reuses its storage and forgets its values.
func TestBatchReset(t *testing.T) {
	b := sampleBatch()
	b.Reset(Copy, []Column{{Name: "x"}})
	if b.Rows() != 0 || b.Size() != 0 {
		t.Fatalf("after Reset: %d rows, %d bytes", b.Rows(), b.Size())
	}
	b.Append([]byte("v"), false)
	if v, _ := b.Value(0, 0); string(v) != "v" {
		t.Errorf("got %q", v)
	}
}

func TestChangesRoundTrip(t *testing.T) {
	for _, want := range []Changes{{}, sampleChanges(), {Action: Allow, List: []Change{{Row: 1, Col: 2, Value: []byte("x")}}}} {
		var got Changes
		if err := DecodeChanges(AppendChanges(nil, &want), &got, 2, 3); err != nil {
			t.Fatal(err)
		}
		if len(got.List) == 0 && len(want.List) == 0 {
			got.List, want.List = nil, nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

func TestChangesSetReset(t *testing.T) {
	var c Changes
	c.Set(0, 1, []byte("a"))
	c.SetNull(2, 0)
	want := []Change{{Row: 0, Col: 1, Value: []byte("a")}, {Row: 2, Col: 0, Null: true}}
	if !reflect.DeepEqual(c.List, want) {
		t.Errorf("got %+v, want %+v", c.List, want)
	}
	c.Action, c.Reason = Terminate, "x"
	c.Reset()
	if c.Action != Allow || c.Reason != "" || len(c.List) != 0 {
		t.Errorf("after Reset: %+v", c)
	}
}

// TestTruncated: every strict prefix of a valid encoding is malformed.
func TestTruncated(t *testing.T) {
	for _, e := range encodings() {
		if err := e.decode(e.enc); err != nil {
			t.Fatalf("%s: the whole encoding: %v", e.name, err)
		}
		for n := range len(e.enc) {
			if err := e.decode(e.enc[:n]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %d of %d bytes: %v, want ErrMalformed", e.name, n, len(e.enc), err)
			}
		}
	}
}

// TestTrailing: bytes after the last known field are ignored (room for
// minor versions).
func TestTrailing(t *testing.T) {
	for _, e := range encodings() {
		if err := e.decode(append(e.enc, 1, 2, 3, 4, 5)); err != nil {
			t.Errorf("%s with trailing bytes: %v", e.name, err)
		}
	}
}

// TestNoPanic: decoders never panic on any one-byte corruption of a valid
// encoding (the fuzz tests go further).
func TestNoPanic(t *testing.T) {
	for _, e := range encodings() {
		p := make([]byte, len(e.enc))
		for i := range e.enc {
			for _, x := range []byte{0, 1, 0x7f, 0x80, 0xfe, 0xff} {
				copy(p, e.enc)
				p[i] = x
				_ = e.decode(p)
			}
		}
	}
}

// put32 returns a copy of enc with the u32 at off replaced by v.
func put32(enc []byte, off int, v uint32) []byte {
	p := bytes.Clone(enc)
	binary.LittleEndian.PutUint32(p[off:], v)
	return p
}

// TestOversizedCounts: a count or length larger than what follows is
// malformed, and refused before anything is allocated for it.
func TestOversizedCounts(t *testing.T) {
	req := Request{Kind: SQLQuery, Statements: []Statement{{Kind: "SELECT"}}}
	reqEnc := AppendRequest(nil, &req)
	// kind, 6 session fields (groups a count), text
	const reqStatements = 4 + 4*6 + 4
	var b Batch
	b.Reset(Rows, []Column{{Type: 25}})
	b.Append([]byte("xy"), false)
	batchEnc := AppendBatch(nil, &b)
	const batchCols, batchRows = 4 + 4*6, 4 + 4*6 + 4 + 12
	c := Changes{List: []Change{{Value: []byte("z")}}}
	changesEnc := AppendChanges(nil, &c)
	v := Verdict{Reviewers: []string{"dba"}}
	verdictEnc := AppendVerdict(nil, &v)

	tests := []struct {
		name   string
		enc    []byte
		decode func([]byte) error
	}{
		{"request groups", put32(reqEnc, 4+4*3, math.MaxUint32), func(p []byte) error { var r Request; return DecodeRequest(p, &r) }},
		{"request text", put32(reqEnc, reqStatements-4, 1<<30), func(p []byte) error { var r Request; return DecodeRequest(p, &r) }},
		{"request statements", put32(reqEnc, reqStatements, math.MaxUint32), func(p []byte) error { var r Request; return DecodeRequest(p, &r) }},
		{"request statements (2)", put32(reqEnc, reqStatements, 2), func(p []byte) error { var r Request; return DecodeRequest(p, &r) }},
		{"request attrs", put32(reqEnc, len(reqEnc)-4, 1<<28), func(p []byte) error { var r Request; return DecodeRequest(p, &r) }},
		{"verdict reviewers", put32(verdictEnc, 8, math.MaxUint32), func(p []byte) error { var v Verdict; return DecodeVerdict(p, &v) }},
		{"batch columns", put32(batchEnc, batchCols, math.MaxUint32), func(p []byte) error { var b Batch; return DecodeBatch(p, &b) }},
		{"batch rows", put32(batchEnc, batchRows, math.MaxUint32), func(p []byte) error { var b Batch; return DecodeBatch(p, &b) }},
		{"batch rows (2)", put32(batchEnc, batchRows, 2), func(p []byte) error { var b Batch; return DecodeBatch(p, &b) }},
		{"batch value length", put32(batchEnc, batchRows+4, 3), func(p []byte) error { var b Batch; return DecodeBatch(p, &b) }},
		{"batch value length -2", put32(batchEnc, batchRows+4, math.MaxUint32-1), func(p []byte) error { var b Batch; return DecodeBatch(p, &b) }},
		{"changes count", put32(changesEnc, 8, math.MaxUint32), func(p []byte) error { var c Changes; return DecodeChanges(p, &c, 1, 1) }},
		{"changes value length", put32(changesEnc, 20, 2), func(p []byte) error { var c Changes; return DecodeChanges(p, &c, 1, 1) }},
		{"changes value length -2", put32(changesEnc, 20, math.MaxUint32-1), func(p []byte) error { var c Changes; return DecodeChanges(p, &c, 1, 1) }},
	}
	for _, tt := range tests {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := tt.decode(tt.enc)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tt.name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: allocated %d bytes", tt.name, n)
		}
	}
}

// TestBatchColumnsWithoutRows: rows without columns cannot be.
func TestBatchRowsWithoutColumns(t *testing.T) {
	var b Batch
	b.Reset(Rows, nil)
	enc := AppendBatch(nil, &b)
	enc = put32(enc, len(enc)-4, 3)
	if err := DecodeBatch(enc, &b); !errors.Is(err, ErrMalformed) {
		t.Errorf("3 rows of no column: %v, want ErrMalformed", err)
	}
}

// changesWith encodes changes with raw (row, col) pairs and empty values.
func changesWith(action uint32, cells ...[2]uint32) []byte {
	p := appendU32(nil, action)
	p = appendStr(p, "")
	p = appendU32(p, uint32(len(cells)))
	for _, rc := range cells {
		p = appendU32(p, rc[0])
		p = appendU32(p, rc[1])
		p = appendStr(p, "v")
	}
	return p
}

func TestDecodeChangesRefuses(t *testing.T) {
	const rows, cols = 2, 3
	tests := []struct {
		name string
		enc  []byte
	}{
		{"deny", changesWith(uint32(Deny))},
		{"review", changesWith(uint32(Review))},
		{"action 4", changesWith(4)},
		{"action max", changesWith(math.MaxUint32)},
		{"row out of range", changesWith(0, [2]uint32{rows, 0})},
		{"col out of range", changesWith(0, [2]uint32{0, cols})},
		{"col max", changesWith(0, [2]uint32{1, math.MaxUint32})},
		{"row max", changesWith(0, [2]uint32{math.MaxUint32, 0})},
		{"col 2^31", changesWith(0, [2]uint32{1, 1 << 31})},
		{"duplicate", changesWith(0, [2]uint32{0, 1}, [2]uint32{0, 1})},
		{"columns out of order", changesWith(0, [2]uint32{0, 2}, [2]uint32{0, 1})},
		{"rows out of order", changesWith(0, [2]uint32{1, 0}, [2]uint32{0, 2})},
	}
	for _, tt := range tests {
		var c Changes
		if err := DecodeChanges(tt.enc, &c, rows, cols); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tt.name, err)
		}
	}
	var c Changes
	if err := DecodeChanges(changesWith(0, [2]uint32{0, 2}, [2]uint32{1, 0}, [2]uint32{1, 2}), &c, rows, cols); err != nil {
		t.Errorf("changes in order: %v", err)
	}
	if err := DecodeChanges(changesWith(0, [2]uint32{0, 0}), &c, 0, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("a change to an empty batch: %v, want ErrMalformed", err)
	}
}

func TestDecodeVerdictRefuses(t *testing.T) {
	for _, a := range []uint32{4, 5, math.MaxUint32} {
		enc := appendStrs(appendStr(appendU32(nil, a), "x"), nil)
		var v Verdict
		if err := DecodeVerdict(enc, &v); !errors.Is(err, ErrMalformed) {
			t.Errorf("action %d: %v, want ErrMalformed", a, err)
		}
	}
}

func TestSubscription(t *testing.T) {
	s := Subscribe(SQLQuery, Rows, Output, 0, 33)
	for k := FrameKind(0); k <= 40; k++ {
		want := k == SQLQuery || k == Rows || k == Output
		if s.Has(k) != want {
			t.Errorf("Has(%v) = %v", k, !want)
		}
	}
	if !s.Requests() || !s.Responses() {
		t.Errorf("%#x: requests %v, responses %v", uint32(s), s.Requests(), s.Responses())
	}
	if Subscribe(Rows).Requests() || Subscribe(SQLQuery).Responses() || Subscription(0).Requests() {
		t.Error("Requests or Responses of a one-sided set")
	}
	for k := FrameKind(0); k <= Output; k++ {
		if want := k >= SQLQuery && k <= Subsystem+2; k.IsRequest() != want {
			t.Errorf("%v.IsRequest() = %v", k, !want)
		}
	}
}

func TestNames(t *testing.T) {
	if SQLFunctionCall.String() != "sql.function_call" || Notification.String() != "notification" || FrameKind(99).String() != "kind(99)" {
		t.Error("FrameKind.String")
	}
	var names []string
	for a := Allow; a <= Terminate+1; a++ {
		names = append(names, a.String())
	}
	if got := strings.Join(names, " "); got != "allow deny review terminate action(4)" {
		t.Errorf("Action.String: %s", got)
	}
	r := sampleRequest()
	if r.Attr("function_oid") != "1234" || r.Attr("missing") != "" {
		t.Error("Request.Attr")
	}
}
