package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite/sqlitetest"
)

func openStore(t testing.TB) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newWriter(t testing.TB, st store.Store, opt Options) *Writer {
	t.Helper()
	w, err := NewWriter(context.Background(), st, testLogger(t), opt)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func closeWriter(t testing.TB, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// record returns a varied record for event number i.
func record(i int) Record {
	switch i % 4 {
	case 0:
		return Record{Kind: KindSessionStart, SessionID: fmt.Sprint("s", i/10), Identity: "alice", Connection: "pg",
			Data: SessionStartData{Protocol: "postgres", ClientAddr: "127.0.0.1:5000", Groups: []string{"dba", "<ops>"}, TLS: true}}
	case 1:
		return Record{Kind: KindRequest, SessionID: fmt.Sprint("s", i/10), Identity: "alice", Connection: "pg",
			Data: RequestData{Kind: "query", Text: fmt.Sprintf("SELECT %d /* é & ☃ */", i), Started: time.Unix(0, int64(i)).UTC(), Rows: int64(i), Outcome: "ok"}}
	case 2:
		return Record{Kind: KindAuthFailed, Identity: "mallory", Data: AuthData{Protocol: "ssh", ClientAddr: "127.0.0.1:2", User: "root", Reason: "bad key"}}
	default:
		return Record{Kind: KindSessionEnd, SessionID: fmt.Sprint("s", i/10), Identity: "alice", Connection: "pg",
			Data: SessionEndData{Reason: "client closed", BytesIn: int64(i), Duration: 1}}
	}
}

// writeChain appends n records through a Writer and closes it.
func writeChain(t testing.TB, st store.Store, n int) {
	t.Helper()
	w := newWriter(t, st, Options{})
	for i := range n {
		if err := w.Append(context.Background(), record(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	closeWriter(t, w)
}

func mustVerify(t *testing.T, st store.Store) VerifyResult {
	t.Helper()
	res, err := Verify(context.Background(), st)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

// TestHashEncoding re-implements the documented encoding independently and
// pins one value, so that the encoding cannot change unnoticed.
func TestHashEncoding(t *testing.T) {
	ev := store.Event{
		Seq: 7, Time: time.Unix(1700000000, 123456789).UTC(), Kind: "request", SessionID: "s1",
		Identity: "alice", Connection: "pg", Data: []byte(`{"text":"SELECT 1"}`),
	}
	prev := strings.Repeat("ab", 32)

	var b bytes.Buffer
	str := func(s string) {
		binary.Write(&b, binary.BigEndian, uint64(len(s)))
		b.WriteString(s)
	}
	str("gatewayd.audit.v1")
	str(prev)
	binary.Write(&b, binary.BigEndian, ev.Seq)
	binary.Write(&b, binary.BigEndian, ev.Time.UnixNano())
	str(ev.Kind)
	str(ev.SessionID)
	str(ev.Identity)
	str(ev.Connection)
	str(string(ev.Data))
	sum := sha256.Sum256(b.Bytes())
	want := hex.EncodeToString(sum[:])

	if got := Hash(prev, ev); got != want {
		t.Errorf("Hash = %s, independent encoding gives %s", got, want)
	}
	const pinned = "97c34f9135535cfe70889357764d1492fb49a95991cd14d688ccc82d81f1603a"
	if got := Hash(prev, ev); got != pinned {
		t.Errorf("Hash = %s, pinned value %s: the encoding changed", got, pinned)
	}
	// PrevHash and Hash fields are not inputs.
	ev2 := ev
	ev2.PrevHash, ev2.Hash = "x", "y"
	if Hash(prev, ev2) != want {
		t.Errorf("Hash depends on ev.PrevHash or ev.Hash")
	}
}

// TestHashUnambiguous moves bytes between adjacent fields: with length
// prefixes every variant hashes differently.
func TestHashUnambiguous(t *testing.T) {
	base := store.Event{Seq: 1, Time: time.Unix(0, 1), Kind: "ab", SessionID: "c", Identity: "", Connection: "d", Data: []byte("{}")}
	variants := []store.Event{base}
	v := base
	v.Kind, v.SessionID = "a", "bc"
	variants = append(variants, v)
	v = base
	v.SessionID, v.Identity = "", "c"
	variants = append(variants, v)
	v = base
	v.Connection, v.Data = "", []byte("d{}")
	variants = append(variants, v)
	v = base
	v.Seq = 2
	variants = append(variants, v)
	v = base
	v.Time = time.Unix(0, 2)
	variants = append(variants, v)
	seen := map[string]int{}
	for i, ev := range variants {
		h := Hash("", ev)
		if j, ok := seen[h]; ok {
			t.Errorf("variants %d and %d hash the same", j, i)
		}
		seen[h] = i
	}
	if Hash("", base) == Hash("0", base) {
		t.Errorf("prevHash is not an input")
	}
}

func TestChainVerifies(t *testing.T) {
	st, _ := openStore(t)
	const n = 3000
	writeChain(t, st, n)
	res := mustVerify(t, st)
	last, err := st.LastEvent(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := VerifyResult{Events: n, OK: true, LastSeq: n, LastHash: last.Hash}
	if res != want {
		t.Errorf("Verify = %+v, want %+v", res, want)
	}
	// The data is the JSON of the record, and times are UTC.
	var got RequestData
	err = st.Events(context.Background(), store.EventFilter{Kind: KindRequest}, func(ev store.Event) error {
		return json.Unmarshal(ev.Data, &got)
	})
	if err != nil || got.Outcome != "ok" {
		t.Errorf("request data did not round trip: %+v, %v", got, err)
	}
}

func TestVerifyEmpty(t *testing.T) {
	st, _ := openStore(t)
	if res := mustVerify(t, st); !res.OK || res.Events != 0 {
		t.Errorf("Verify of an empty log = %+v, want OK", res)
	}
}

// TestChainContinuesAcrossWriters restarts the writer: the second continues
// the first's chain.
func TestChainContinuesAcrossWriters(t *testing.T) {
	st, _ := openStore(t)
	writeChain(t, st, 10)
	writeChain(t, st, 15)
	if res := mustVerify(t, st); !res.OK || res.Events != 25 {
		t.Errorf("Verify = %+v, want 25 events OK", res)
	}
}

// TestVerifyDetectsTampering edits the SQLite file directly, as an attacker
// with access to it would, and expects Verify to point at the right event.
func TestVerifyDetectsTampering(t *testing.T) {
	const n = 100
	edit := func(seq int64, fn func(*store.Event)) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { sqlitetest.EditEvent(t, path, seq, fn) }
	}
	editLog := func(fn func([]store.Event) []store.Event) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { sqlitetest.EditLog(t, path, fn) }
	}
	tests := []struct {
		name       string
		tamper     func(t *testing.T, path string)
		wantBroken int64
		wantReason string
	}{
		{"edit data", edit(37, func(ev *store.Event) { ev.Data = []byte(`{"text":"SELECT 2"}`) }), 37, "hash mismatch"},
		{"edit data by one byte", edit(42, func(ev *store.Event) {
			ev.Data = bytes.ReplaceAll(ev.Data, []byte("SELECT"), []byte("SELECU"))
		}), 42, "hash mismatch"},
		{"edit identity", edit(5, func(ev *store.Event) { ev.Identity = "bob" }), 5, "hash mismatch"},
		{"edit time", edit(64, func(ev *store.Event) { ev.Time = ev.Time.Add(1) }), 64, "hash mismatch"},
		{"edit kind", edit(n, func(ev *store.Event) { ev.Kind = "auth.ok" }), n, "hash mismatch"},
		{"edit first", edit(1, func(ev *store.Event) { ev.SessionID = "x" }), 1, "hash mismatch"},
		// Recompute the edited event's hash, as a careful attacker would:
		// the next event's prev_hash still gives it away.
		{"rewrite hash too", edit(20, func(ev *store.Event) {
			ev.Identity = "bob"
			ev.Hash = Hash(ev.PrevHash, *ev)
		}), 21, "prev_hash mismatch"},
		{"delete one", func(t *testing.T, path string) { sqlitetest.DeleteEvent(t, path, 50) }, 51, "sequence gap"},
		{"delete the first", func(t *testing.T, path string) { sqlitetest.DeleteEvent(t, path, 1) }, 2, "sequence gap"},
		{"delete a range", editLog(func(evs []store.Event) []store.Event {
			return slices.DeleteFunc(evs, func(ev store.Event) bool { return ev.Seq >= 60 && ev.Seq <= 70 })
		}), 71, "sequence gap"},
		{"renumber after delete", editLog(func(evs []store.Event) []store.Event {
			evs = slices.DeleteFunc(evs, func(ev store.Event) bool { return ev.Seq == 30 })
			for i := range evs {
				if evs[i].Seq > 30 {
					evs[i].Seq--
				}
			}
			return evs
		}), 30, "prev_hash mismatch"},
		{"swap two", editLog(func(evs []store.Event) []store.Event {
			i := slices.IndexFunc(evs, func(ev store.Event) bool { return ev.Seq == 10 })
			evs[i], evs[i+1] = evs[i+1], evs[i]
			evs[i].Seq, evs[i+1].Seq = 10, 11
			return evs
		}), 10, "prev_hash mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, path := openStore(t)
			writeChain(t, st, n)
			tt.tamper(t, path)
			res := mustVerify(t, st)
			if res.OK || res.FirstBroken != tt.wantBroken || !strings.Contains(res.Reason, tt.wantReason) {
				t.Errorf("Verify = %+v, want broken at %d with %q", res, tt.wantBroken, tt.wantReason)
			}
			if wantLast := tt.wantBroken - 1; tt.wantReason == "sequence gap" {
				// The last good event is the one before the gap.
				if res.LastSeq >= wantLast {
					t.Errorf("LastSeq = %d, want before the gap", res.LastSeq)
				}
			} else if res.LastSeq != wantLast {
				t.Errorf("LastSeq = %d, want the event before the broken one, %d", res.LastSeq, wantLast)
			}
		})
	}
}

func exportAll(t *testing.T, st store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Export(context.Background(), st, &buf, store.EventFilter{}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes()
}

func TestExportVerifyStream(t *testing.T) {
	st, _ := openStore(t)
	const n = 700
	writeChain(t, st, n)
	out := exportAll(t, st)

	lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	if len(lines) != n {
		t.Fatalf("export has %d lines, want %d", len(lines), n)
	}
	// Each line carries the stored event unchanged, data byte for byte.
	i := 0
	err := st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error {
		var e ExportedEvent
		if err := json.Unmarshal(lines[i], &e); err != nil {
			return err
		}
		got := e.Event()
		if got.Seq != ev.Seq || !got.Time.Equal(ev.Time) || !bytes.Equal(got.Data, ev.Data) || got.Hash != ev.Hash ||
			got.PrevHash != ev.PrevHash || got.Kind != ev.Kind || got.Identity != ev.Identity {
			return fmt.Errorf("line %d = %+v, stored %+v", i+1, got, ev)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(lines[0], []byte(`"time":"`)) || !bytes.Contains(lines[0], []byte(`Z","kind"`)) {
		t.Errorf("time is not RFC 3339 UTC: %s", lines[0])
	}
	if !bytes.Contains(out, []byte(`\u003cops\u003e`)) {
		t.Errorf("export changed the stored escaping of the data: %s", lines[0])
	}

	res, err := VerifyStream(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("VerifyStream: %v", err)
	}
	want := mustVerify(t, st)
	if res != want || !res.OK {
		t.Errorf("VerifyStream = %+v, Verify = %+v", res, want)
	}

	// A filtered export is a valid export but not a full chain.
	var buf bytes.Buffer
	if err := Export(context.Background(), st, &buf, store.EventFilter{Kind: KindRequest}); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 175 {
		t.Errorf("filtered export has %d lines, want 175", n)
	}
	if res, err := VerifyStream(&buf); err != nil || res.OK {
		t.Errorf("VerifyStream of a filtered export = %+v, %v; want broken", res, err)
	}
}

func TestVerifyStreamDetectsTampering(t *testing.T) {
	st, _ := openStore(t)
	writeChain(t, st, 60)
	out := exportAll(t, st)
	lines := strings.SplitAfter(string(out), "\n")
	lines = lines[:len(lines)-1] // the empty string after the final newline

	join := func(ls []string) string { return strings.Join(ls, "") }
	edit := func(seq int, old, new string) string {
		ls := append([]string(nil), lines...)
		if !strings.Contains(ls[seq-1], old) {
			t.Fatalf("line %d has no %q: %s", seq, old, ls[seq-1])
		}
		ls[seq-1] = strings.Replace(ls[seq-1], old, new, 1)
		return join(ls)
	}
	tests := []struct {
		name       string
		in         string
		wantBroken int64
		wantReason string
	}{
		{"edit identity", edit(20, `"identity":"alice"`, `"identity":"bob"`), 20, "hash mismatch"},
		{"edit data", edit(22, `"SELECT 21`, `"SELECT 99`), 22, "hash mismatch"},
		{"reformat data", edit(23, `"data":{"`, `"data":{ "`), 23, "hash mismatch"},
		{"edit time", edit(7, `Z"`, `+00:00"`), 0, ""}, // same instant: still verifies
		{"shift time", edit(8, `.`, `.9`), 8, "hash mismatch"},
		{"drop a line", join(append(append([]string(nil), lines[:30]...), lines[31:]...)), 32, "sequence gap"},
		{"swap lines", join(append(append(append([]string(nil), lines[:9]...), lines[10], lines[9]), lines[11:]...)), 11, "sequence gap"},
		{"repeat a line", join(append(append([]string(nil), lines[:10]...), lines[9:]...)), 10, "sequence out of order"},
		{"drop the head", join(lines[1:]), 2, "not 1"},
		{"garbage line", join(append(append(append([]string(nil), lines[:4]...), "{nope\n"), lines[5:]...)), 5, "line 5 is not an exported event"},
		{"unknown field", edit(3, `"seq":3,`, `"seq":3,"extra":1,`), 3, "not an exported event"},
		{"blank lines and CRLF", "\n" + strings.ReplaceAll(join(lines), "\n", "\r\n") + "\n\n", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := VerifyStream(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("VerifyStream: %v", err)
			}
			if tt.wantBroken == 0 {
				if !res.OK || res.LastSeq != 60 {
					t.Errorf("VerifyStream = %+v, want OK to 60", res)
				}
				return
			}
			if res.OK || res.FirstBroken != tt.wantBroken || !strings.Contains(res.Reason, tt.wantReason) {
				t.Errorf("VerifyStream = %+v, want broken at %d with %q", res, tt.wantBroken, tt.wantReason)
			}
		})
	}
}

func TestVerifyStreamLineTooLong(t *testing.T) {
	in := strings.NewReader(`{"seq":1,"data":"` + strings.Repeat("a", MaxExportLine+10))
	_, err := VerifyStream(in)
	if err == nil || !strings.Contains(err.Error(), "line 1 is longer than") {
		t.Errorf("VerifyStream of an over-long line: %v", err)
	}
}

func TestExportRefusesNonCompactData(t *testing.T) {
	st, _ := openStore(t)
	ev := store.Event{Seq: 1, Time: time.Unix(0, 1), Kind: KindRequest, Data: []byte("{ }")}
	ev.Hash = Hash("", ev)
	if err := st.AppendEvents(context.Background(), []store.Event{ev}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := Export(context.Background(), st, &buf, store.EventFilter{})
	if err == nil || !strings.Contains(err.Error(), "event 1") {
		t.Errorf("Export of non-compact data: %v, want an error naming event 1", err)
	}
}

// TestWriterConcurrent appends from many goroutines: everything is
// committed, each goroutine's records in its order, and the chain verifies.
func TestWriterConcurrent(t *testing.T) {
	st, _ := openStore(t)
	w := newWriter(t, st, Options{MaxBatch: 64, QueueSize: 128, FlushInterval: time.Millisecond})
	const (
		goroutines = 16
		each       = 300
	)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := Record{Kind: KindRequest, SessionID: fmt.Sprint("g", g), Data: map[string]int{"g": g, "i": i}}
				var err error
				if i%50 == 0 {
					err = w.AppendSync(context.Background(), r)
				} else {
					err = w.Append(context.Background(), r)
				}
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	closeWriter(t, w)

	next := make([]int, goroutines)
	var n int
	err := st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error {
		var d map[string]int
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return err
		}
		if d["i"] != next[d["g"]] {
			return fmt.Errorf("seq %d: goroutine %d record %d, want %d", ev.Seq, d["g"], d["i"], next[d["g"]])
		}
		next[d["g"]]++
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != goroutines*each {
		t.Errorf("%d events committed, want %d", n, goroutines*each)
	}
	if res := mustVerify(t, st); !res.OK || res.Events != goroutines*each {
		t.Errorf("Verify = %+v", res)
	}
}

// TestAppendSyncCommits uses a flush interval far beyond the test's
// patience: AppendSync must not wait for it.
func TestAppendSyncCommits(t *testing.T) {
	st, _ := openStore(t)
	w := newWriter(t, st, Options{FlushInterval: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if err := w.Append(ctx, record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AppendSync(ctx, record(3)); err != nil {
		t.Fatalf("AppendSync: %v", err)
	}
	last, err := st.LastEvent(ctx)
	if err != nil || last.Seq != 4 {
		t.Fatalf("after AppendSync LastEvent = %d, %v; want 4 (the queued records go first)", last.Seq, err)
	}
	if err := w.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

func TestRecordTime(t *testing.T) {
	st, _ := openStore(t)
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("Y", -7200))
	w := newWriter(t, st, Options{Now: func() time.Time { return fixed }})
	ctx := context.Background()
	given := time.Date(2020, 1, 1, 0, 0, 0, 999, time.UTC)
	if err := w.AppendSync(ctx, Record{Kind: KindProtocol, Time: given}); err != nil {
		t.Fatal(err)
	}
	if err := w.AppendSync(ctx, Record{Kind: KindProtocol, Identity: "bad\xffutf8"}); err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	st.Events(ctx, store.EventFilter{}, func(ev store.Event) error { evs = append(evs, ev); return nil })
	if !evs[0].Time.Equal(given) || !evs[1].Time.Equal(fixed) || evs[1].Time.Location() != time.UTC {
		t.Errorf("times = %v, %v; want %v, %v UTC", evs[0].Time, evs[1].Time, given, fixed)
	}
	if string(evs[0].Data) != "null" {
		t.Errorf("nil Data stored as %q, want null", evs[0].Data)
	}
	if evs[1].Identity != "bad\uFFFDutf8" {
		t.Errorf("invalid UTF-8 identity stored as %q", evs[1].Identity)
	}
	// And the export of that chain verifies.
	if res, err := VerifyStream(bytes.NewReader(exportAll(t, st))); err != nil || !res.OK {
		t.Errorf("VerifyStream = %+v, %v", res, err)
	}
	if err := w.Append(ctx, Record{}); err == nil {
		t.Errorf("Append without a kind succeeded")
	}
	if err := w.Append(ctx, Record{Kind: KindRequest, Data: func() {}}); err == nil {
		t.Errorf("Append of unmarshallable data succeeded")
	}
}

func TestClosed(t *testing.T) {
	st, _ := openStore(t)
	w := newWriter(t, st, Options{FlushInterval: time.Hour})
	for i := range 100 {
		if err := w.Append(context.Background(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	closeWriter(t, w)
	if last, err := st.LastEvent(context.Background()); err != nil || last.Seq != 100 {
		t.Errorf("Close flushed up to %d, %v; want 100", last.Seq, err)
	}
	if err := w.Append(context.Background(), record(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// faultyStore injects errors into AppendEvents.
type faultyStore struct {
	*sqlite.Store
	failures     atomic.Int64 // how many more calls fail; < 0 means all
	failAfter    atomic.Bool  // commit, then report an error anyway
	appendCalls  atomic.Int64
	block        chan struct{} // when non-nil, AppendEvents waits on it
	blockedCalls atomic.Int64
}

var errInjected = errors.New("injected: disk on fire")

func (s *faultyStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	s.appendCalls.Add(1)
	if s.block != nil {
		s.blockedCalls.Add(1)
		<-s.block
	}
	if n := s.failures.Load(); n != 0 {
		s.failures.Add(-1)
		return errInjected
	}
	if err := s.Store.AppendEvents(ctx, evs); err != nil {
		return err
	}
	if s.failAfter.Load() {
		return errInjected
	}
	return nil
}

func fastRetries(t *testing.T) {
	old := retryBackoff
	retryBackoff = []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	t.Cleanup(func() { retryBackoff = old })
}

func TestFailClosed(t *testing.T) {
	fastRetries(t)
	sq, _ := openStore(t)
	st := &faultyStore{Store: sq}
	w := newWriter(t, st, Options{})
	ctx := context.Background()
	for i := range 5 {
		if err := w.AppendSync(ctx, record(i)); err != nil {
			t.Fatal(err)
		}
	}
	st.failures.Store(-1)
	err := w.AppendSync(ctx, record(5))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errInjected) {
		t.Fatalf("AppendSync on a failing store: %v, want ErrUnavailable wrapping the cause", err)
	}
	if calls := st.appendCalls.Load(); calls != 5+1+int64(len(retryBackoff)) {
		t.Errorf("%d AppendEvents calls, want 5 + 1 + %d retries", calls, len(retryBackoff))
	}
	if err := w.Healthy(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Healthy = %v, want ErrUnavailable", err)
	}
	// It stays unavailable, also once the store would work again.
	st.failures.Store(0)
	if err := w.Append(ctx, record(6)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append after the failure: %v, want ErrUnavailable", err)
	}
	if err := w.AppendSync(ctx, record(6)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("AppendSync after the failure: %v, want ErrUnavailable", err)
	}
	if err := w.Close(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Close = %v, want ErrUnavailable", err)
	}
	// What was committed still verifies.
	if res := mustVerify(t, st); !res.OK || res.Events != 5 {
		t.Errorf("Verify = %+v, want 5 events OK", res)
	}
}

func TestFailClosedAsync(t *testing.T) {
	fastRetries(t)
	sq, _ := openStore(t)
	st := &faultyStore{Store: sq}
	st.failures.Store(-1)
	w := newWriter(t, st, Options{FlushInterval: time.Millisecond})
	ctx := context.Background()
	// Appends are accepted until the first batch has failed.
	deadline := time.Now().Add(10 * time.Second)
	for w.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("writer still healthy on a failing store")
		}
		if err := w.Append(ctx, record(0)); err != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := w.Append(ctx, record(0)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append: %v, want ErrUnavailable", err)
	}
}

func TestTransientFailureRetried(t *testing.T) {
	fastRetries(t)
	sq, _ := openStore(t)
	st := &faultyStore{Store: sq}
	w := newWriter(t, st, Options{})
	st.failures.Store(int64(len(retryBackoff))) // the last retry succeeds
	if err := w.AppendSync(context.Background(), record(0)); err != nil {
		t.Fatalf("AppendSync across transient failures: %v", err)
	}
	if err := w.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
	closeWriter(t, w)
	if res := mustVerify(t, st); !res.OK || res.Events != 1 {
		t.Errorf("Verify = %+v", res)
	}
}

// TestErrorAfterCommit: the store committed but reported an error; the
// writer must notice instead of appending the batch twice or failing.
func TestErrorAfterCommit(t *testing.T) {
	fastRetries(t)
	sq, _ := openStore(t)
	st := &faultyStore{Store: sq}
	w := newWriter(t, st, Options{})
	st.failAfter.Store(true)
	if err := w.AppendSync(context.Background(), record(0)); err != nil {
		t.Fatalf("AppendSync: %v", err)
	}
	st.failAfter.Store(false)
	if err := w.AppendSync(context.Background(), record(1)); err != nil {
		t.Fatalf("AppendSync: %v", err)
	}
	closeWriter(t, w)
	if res := mustVerify(t, st); !res.OK || res.Events != 2 {
		t.Errorf("Verify = %+v, want 2 events OK", res)
	}
}

// TestOtherWriterDetected: someone else appended to the log behind the
// writer's back; the writer cannot continue the chain and fails closed at
// once instead of retrying.
func TestOtherWriterDetected(t *testing.T) {
	fastRetries(t)
	st, _ := openStore(t)
	w := newWriter(t, st, Options{})
	ctx := context.Background()
	if err := w.AppendSync(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	other := newWriter(t, st, Options{})
	if err := other.AppendSync(ctx, record(1)); err != nil {
		t.Fatal(err)
	}
	err := w.AppendSync(ctx, record(2))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "another writer") {
		t.Errorf("AppendSync after another writer: %v", err)
	}
}

// TestBackpressure: with the store stuck, Append blocks once the queue is
// full (it never drops) and honours its context; everything accepted is
// committed once the store recovers.
func TestBackpressure(t *testing.T) {
	sq, _ := openStore(t)
	st := &faultyStore{Store: sq, block: make(chan struct{})}
	w := newWriter(t, st, Options{QueueSize: 4, MaxBatch: 2, FlushInterval: time.Hour})
	// The first two records make a full batch, which the store holds.
	for i := range 2 {
		if err := w.Append(context.Background(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	for st.blockedCalls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	accepted := 2
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := w.Append(ctx, record(accepted))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
		if accepted > 100 {
			t.Fatal("Append never blocked")
		}
	}
	// 2 in the stuck batch, 4 in the queue.
	if accepted != 6 {
		t.Errorf("accepted %d records before blocking, want 6", accepted)
	}
	if err := w.Healthy(); err != nil {
		t.Errorf("a full queue made the writer unhealthy: %v", err)
	}
	close(st.block)
	closeWriter(t, w)
	if res := mustVerify(t, st); !res.OK || res.Events != int64(accepted) {
		t.Errorf("Verify = %+v, want %d events", res, accepted)
	}
}

// TestAppendAllocations: Append allocates no more than the JSON marshal of
// its data.
func TestAppendAllocations(t *testing.T) {
	st, _ := openStore(t)
	// A batch and interval larger than the runs, so the writer goroutine only
	// receives (and allocates nothing) while measuring.
	w := newWriter(t, st, Options{MaxBatch: 4096, QueueSize: 4096, FlushInterval: time.Hour})
	r := record(1)
	ctx := context.Background()
	marshal := testing.AllocsPerRun(500, func() {
		if _, err := json.Marshal(r.Data); err != nil {
			t.Fatal(err)
		}
	})
	appendAllocs := testing.AllocsPerRun(500, func() {
		if err := w.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("json.Marshal: %.1f allocs, Append: %.1f allocs", marshal, appendAllocs)
	if appendAllocs > marshal {
		t.Errorf("Append allocates %.1f times, json.Marshal alone %.1f", appendAllocs, marshal)
	}
}

// BenchmarkAppend measures sustained Append throughput into SQLite,
// including the final flush: events/s is committed events per second.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name     string
		parallel bool
		sync     bool
	}{
		{"serial", false, false},
		{"parallel", true, false},
		{"parallel-sync", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st, _ := openStore(b)
			w, err := NewWriter(context.Background(), st, slog.New(slog.DiscardHandler), Options{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			r := Record{Kind: KindRequest, SessionID: "0192d3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d", Identity: "alice@example.com", Connection: "pg-prod",
				Data: &RequestData{Kind: "query", Text: "SELECT id, name FROM users WHERE id = $1", Started: time.Now(), Duration: 120000, Rows: 1, Outcome: "ok", Tag: "SELECT 1"}}
			add := w.Append
			if bc.sync {
				add = w.AppendSync
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if bc.parallel {
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := add(ctx, r); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for range b.N {
					if err := add(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := w.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
