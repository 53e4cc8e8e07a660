// Package storetest is the conformance suite every store.Store
// implementation runs: the same behaviour from SQLite and PostgreSQL.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// Run runs the conformance suite. open returns a new, empty store for each
// subtest; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st store.Store)
	}{
		{"SessionRoundTrip", testSessionRoundTrip},
		{"SessionNotFound", testSessionNotFound},
		{"SessionDuplicate", testSessionDuplicate},
		{"EndSession", testEndSession},
		{"SessionsOrderAndFilter", testSessionsOrderAndFilter},
		{"SessionsLimit", testSessionsLimit},
		{"LastEventEmpty", testLastEventEmpty},
		{"AppendAndRead", testAppendAndRead},
		{"EventFilters", testEventFilters},
		{"EventsManyPages", testEventsManyPages},
		{"EventsStopsOnError", testEventsStopsOnError},
		{"EventsCallbackMayUseStore", testEventsCallbackMayUseStore},
		{"DataBytesRoundTrip", testDataBytesRoundTrip},
		{"SeqGapRefused", testSeqGapRefused},
		{"AppendEmpty", testAppendEmpty},
		{"ConcurrentAppendsAndReads", testConcurrentAppendsAndReads},
	}
	tests = append(tests, reviewTests...)
	tests = append(tests, revocationTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, st)
		})
	}
}

// base is a fixed instant with nanoseconds, in a non-UTC zone, so that a
// store that drops precision or keeps the zone is caught.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", 5*3600+1800))

func session(id, identity string, started time.Time) store.Session {
	return store.Session{
		ID:         id,
		Protocol:   "postgres",
		Connection: "db-" + id,
		Identity:   identity,
		Email:      identity + "@example.com",
		ClientAddr: "127.0.0.1:5" + id,
		Started:    started,
	}
}

func testSessionRoundTrip(t *testing.T, st store.Store) {
	ctx := context.Background()
	want := session("s1", "alice", base)
	if err := st.CreateSession(ctx, want); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	got, err := st.Session(ctx, "s1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	want.Started = want.Started.UTC()
	if got != want {
		t.Errorf("Session = %+v, want %+v", got, want)
	}
	if got.Started.Location() != time.UTC {
		t.Errorf("Started location = %v, want UTC", got.Started.Location())
	}
	if !got.Ended.IsZero() {
		t.Errorf("open session has Ended %v", got.Ended)
	}
}

func testSessionNotFound(t *testing.T, st store.Store) {
	ctx := context.Background()
	if _, err := st.Session(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Session(missing) error = %v, want ErrNotFound", err)
	}
	err := st.EndSession(ctx, store.SessionEnd{ID: "nope", Ended: base, Reason: "x"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EndSession(missing) error = %v, want ErrNotFound", err)
	}
}

func testSessionDuplicate(t *testing.T, st store.Store) {
	ctx := context.Background()
	if err := st.CreateSession(ctx, session("s1", "alice", base)); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if err := st.CreateSession(ctx, session("s1", "bob", base)); err == nil {
		t.Errorf("second CreateSession with the same id succeeded")
	}
	got, err := st.Session(ctx, "s1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if got.Identity != "alice" {
		t.Errorf("duplicate create overwrote the session: identity %q", got.Identity)
	}
}

func testEndSession(t *testing.T, st store.Store) {
	ctx := context.Background()
	s := session("s1", "alice", base)
	if err := st.CreateSession(ctx, s); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	end := store.SessionEnd{
		ID: "s1", Ended: base.Add(90*time.Second + 7), Reason: "client closed",
		BytesIn: 1 << 40, BytesOut: 12345, Requests: 42,
	}
	if err := st.EndSession(ctx, end); err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	got, err := st.Session(ctx, "s1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if !got.Ended.Equal(end.Ended) || got.Ended.Location() != time.UTC {
		t.Errorf("Ended = %v, want %v in UTC", got.Ended, end.Ended.UTC())
	}
	if got.EndReason != end.Reason || got.BytesIn != end.BytesIn || got.BytesOut != end.BytesOut || got.Requests != end.Requests {
		t.Errorf("ended session = %+v, want the values of %+v", got, end)
	}
	if !got.Started.Equal(s.Started) || got.Identity != s.Identity || got.Protocol != s.Protocol {
		t.Errorf("EndSession changed the start fields: %+v", got)
	}
}

func testSessionsOrderAndFilter(t *testing.T, st store.Store) {
	ctx := context.Background()
	// Created out of order; listed newest first.
	for _, spec := range []struct {
		id, who string
		at      int
	}{
		{"a", "alice", 2}, {"b", "bob", 0}, {"c", "alice", 5}, {"d", "bob", 3}, {"e", "alice", 1},
	} {
		if err := st.CreateSession(ctx, session(spec.id, spec.who, base.Add(time.Duration(spec.at)*time.Minute))); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
	tests := []struct {
		name string
		f    store.SessionFilter
		want []string
	}{
		{"all", store.SessionFilter{}, []string{"c", "d", "a", "e", "b"}},
		{"identity", store.SessionFilter{Identity: "alice"}, []string{"c", "a", "e"}},
		{"identity limit", store.SessionFilter{Identity: "alice", Limit: 2}, []string{"c", "a"}},
		{"limit", store.SessionFilter{Limit: 1}, []string{"c"}},
		{"unknown identity", store.SessionFilter{Identity: "mallory"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.Sessions(ctx, tt.f)
			if err != nil {
				t.Fatalf("Sessions: %v", err)
			}
			var ids []string
			for _, s := range got {
				ids = append(ids, s.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Errorf("Sessions(%+v) = %v, want %v", tt.f, ids, tt.want)
			}
		})
	}
}

func testSessionsLimit(t *testing.T, st store.Store) {
	ctx := context.Background()
	for i := range 105 {
		s := session(fmt.Sprintf("s%03d", i), "alice", base.Add(time.Duration(i)*time.Second))
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
	got, err := st.Sessions(ctx, store.SessionFilter{})
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if len(got) != 100 {
		t.Fatalf("Sessions with no limit returned %d, want the default 100", len(got))
	}
	if got[0].ID != "s104" || got[99].ID != "s005" {
		t.Errorf("Sessions returned %s..%s, want s104..s005", got[0].ID, got[99].ID)
	}
	got, err = st.Sessions(ctx, store.SessionFilter{Limit: 200})
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if len(got) != 105 {
		t.Errorf("Sessions(Limit 200) returned %d, want 105", len(got))
	}
}

func testLastEventEmpty(t *testing.T, st store.Store) {
	if _, err := st.LastEvent(context.Background()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastEvent on an empty log: error = %v, want ErrNotFound", err)
	}
}

// event builds the event with sequence number seq. The hashes are opaque to
// the store; they only have to come back unchanged.
func event(seq int64, kind, sessionID string) store.Event {
	return store.Event{
		Seq:        seq,
		Time:       base.Add(time.Duration(seq) * time.Millisecond),
		Kind:       kind,
		SessionID:  sessionID,
		Identity:   "alice",
		Connection: "db",
		Data:       fmt.Appendf(nil, `{"n":%d}`, seq),
		PrevHash:   fmt.Sprintf("h%d", seq-1),
		Hash:       fmt.Sprintf("h%d", seq),
	}
}

func appendRange(t *testing.T, st store.Store, from, to int64, kind, sessionID string) []store.Event {
	t.Helper()
	var evs []store.Event
	for seq := from; seq <= to; seq++ {
		evs = append(evs, event(seq, kind, sessionID))
	}
	if err := st.AppendEvents(context.Background(), evs); err != nil {
		t.Fatalf("AppendEvents(%d..%d): %v", from, to, err)
	}
	return evs
}

func collect(t *testing.T, st store.Store, f store.EventFilter) []store.Event {
	t.Helper()
	var out []store.Event
	if err := st.Events(context.Background(), f, func(ev store.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatalf("Events(%+v): %v", f, err)
	}
	return out
}

func sameEvent(a, b store.Event) bool {
	return a.Seq == b.Seq && a.Time.Equal(b.Time) && a.Kind == b.Kind && a.SessionID == b.SessionID &&
		a.Identity == b.Identity && a.Connection == b.Connection && bytes.Equal(a.Data, b.Data) &&
		a.PrevHash == b.PrevHash && a.Hash == b.Hash
}

func testAppendAndRead(t *testing.T, st store.Store) {
	ctx := context.Background()
	want := appendRange(t, st, 1, 3, "request", "s1")
	want = append(want, appendRange(t, st, 4, 4, "session.end", "s1")...)

	got := collect(t, st, store.EventFilter{})
	if len(got) != len(want) {
		t.Fatalf("Events returned %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameEvent(got[i], want[i]) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
		if got[i].Time.Location() != time.UTC {
			t.Errorf("event %d time location = %v, want UTC", i, got[i].Time.Location())
		}
		if got[i].Time.UnixNano() != want[i].Time.UnixNano() {
			t.Errorf("event %d time = %d ns, want %d ns", i, got[i].Time.UnixNano(), want[i].Time.UnixNano())
		}
	}
	last, err := st.LastEvent(ctx)
	if err != nil {
		t.Fatalf("LastEvent: %v", err)
	}
	if !sameEvent(last, want[3]) {
		t.Errorf("LastEvent = %+v, want %+v", last, want[3])
	}
}

func testEventFilters(t *testing.T, st store.Store) {
	ctx := context.Background()
	kinds := []string{"auth.ok", "session.start", "request", "request", "session.end"}
	var evs []store.Event
	seq := int64(0)
	for _, sid := range []string{"s1", "s2", ""} {
		for _, k := range kinds {
			seq++
			evs = append(evs, event(seq, k, sid))
		}
	}
	if err := st.AppendEvents(ctx, evs); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	seqs := func(f store.EventFilter) []int64 {
		var out []int64
		for _, ev := range collect(t, st, f) {
			out = append(out, ev.Seq)
		}
		return out
	}
	tests := []struct {
		name string
		f    store.EventFilter
		want []int64
	}{
		{"all", store.EventFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
		{"session", store.EventFilter{SessionID: "s2"}, []int64{6, 7, 8, 9, 10}},
		{"kind", store.EventFilter{Kind: "request"}, []int64{3, 4, 8, 9, 13, 14}},
		{"after", store.EventFilter{AfterSeq: 12}, []int64{13, 14, 15}},
		{"session and kind", store.EventFilter{SessionID: "s1", Kind: "request"}, []int64{3, 4}},
		{"all three", store.EventFilter{SessionID: "s2", Kind: "request", AfterSeq: 8}, []int64{9}},
		{"after the end", store.EventFilter{AfterSeq: 15}, nil},
		{"no such kind", store.EventFilter{Kind: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqs(tt.f); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Events(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

// testEventsManyPages reads more events than any sensible page size, so an
// implementation that pages must get the page boundaries right.
func testEventsManyPages(t *testing.T, st store.Store) {
	const n = 2500
	for from := int64(1); from <= n; from += 500 {
		appendRange(t, st, from, from+499, "request", "s1")
	}
	got := collect(t, st, store.EventFilter{})
	if len(got) != n {
		t.Fatalf("Events returned %d events, want %d", len(got), n)
	}
	for i, ev := range got {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d, want %d", i, ev.Seq, i+1)
		}
	}
	if got := collect(t, st, store.EventFilter{AfterSeq: 1000}); len(got) != n-1000 || got[0].Seq != 1001 {
		t.Errorf("Events(AfterSeq 1000) returned %d events starting at %d", len(got), got[0].Seq)
	}
}

func testEventsStopsOnError(t *testing.T, st store.Store) {
	appendRange(t, st, 1, 10, "request", "s1")
	stop := errors.New("stop here")
	n := 0
	err := st.Events(context.Background(), store.EventFilter{}, func(ev store.Event) error {
		n++
		if ev.Seq == 4 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("Events error = %v, want the callback's error", err)
	}
	if n != 4 {
		t.Errorf("callback ran %d times, want 4", n)
	}
}

// testEventsCallbackMayUseStore checks that the iteration does not hold
// anything the store's other methods need.
func testEventsCallbackMayUseStore(t *testing.T, st store.Store) {
	ctx := context.Background()
	appendRange(t, st, 1, 3, "request", "s1")
	next := int64(4)
	err := st.Events(ctx, store.EventFilter{}, func(ev store.Event) error {
		if _, err := st.LastEvent(ctx); err != nil {
			return err
		}
		if next <= 6 {
			if err := st.AppendEvents(ctx, []store.Event{event(next, "request", "s1")}); err != nil {
				return err
			}
			next++
		}
		return st.CreateSession(ctx, session(fmt.Sprint("cb", ev.Seq), "alice", base))
	})
	if err != nil {
		t.Fatalf("Events with a callback using the store: %v", err)
	}
	if got := collect(t, st, store.EventFilter{}); len(got) != 6 {
		t.Errorf("after appending from the callback, %d events, want 6", len(got))
	}
}

func testDataBytesRoundTrip(t *testing.T, st store.Store) {
	datas := [][]byte{
		[]byte(`{"b":1,"a":2}`),                  // key order kept
		[]byte(`{ "spaced" :  [1, 2.50, 1e3] }`), // whitespace and number spelling kept
		[]byte(`{"text":"caf\u00e9 \u003cb\u003e","raw":"café ☃ 🔐"}`),
		[]byte(`{"nul":"\u0000","esc":"\"\\\/\n"}`),
		[]byte("null"),
		{0x00, 0xff, 0xfe, '{', 0x80, '\n', '\r', 0x00}, // not JSON at all
		bytes.Repeat([]byte(`{"k":"0123456789abcdef"}`), 1<<14),
	}
	var evs []store.Event
	for i, d := range datas {
		ev := event(int64(i+1), "request", "s1")
		ev.Data = d
		evs = append(evs, ev)
	}
	if err := st.AppendEvents(context.Background(), evs); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	got := collect(t, st, store.EventFilter{})
	if len(got) != len(datas) {
		t.Fatalf("Events returned %d events, want %d", len(got), len(datas))
	}
	for i, d := range datas {
		if !bytes.Equal(got[i].Data, d) {
			t.Errorf("event %d data = %q, want %q", i+1, truncate(got[i].Data), truncate(d))
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func testSeqGapRefused(t *testing.T, st store.Store) {
	ctx := context.Background()
	refuse := func(name string, evs ...store.Event) {
		t.Helper()
		if err := st.AppendEvents(ctx, evs); err == nil {
			t.Errorf("%s: AppendEvents succeeded, want a refusal", name)
		}
	}
	refuse("first event not 1", event(2, "request", "s1"))
	refuse("first event 0", event(0, "request", "s1"))
	appendRange(t, st, 1, 3, "request", "s1")
	refuse("gap after the last", event(5, "request", "s1"))
	refuse("repeat of the last", event(3, "request", "s1"))
	refuse("before the last", event(2, "request", "s1"))
	refuse("gap inside the batch", event(4, "request", "s1"), event(5, "request", "s1"), event(7, "request", "s1"))
	refuse("repeat inside the batch", event(4, "request", "s1"), event(4, "request", "s1"))
	refuse("descending batch", event(5, "request", "s1"), event(4, "request", "s1"))

	// A refused batch writes nothing, not even its valid prefix.
	got := collect(t, st, store.EventFilter{})
	if len(got) != 3 {
		t.Fatalf("after refused appends the log has %d events, want 3", len(got))
	}
	last, err := st.LastEvent(ctx)
	if err != nil || last.Seq != 3 {
		t.Fatalf("LastEvent = %d, %v; want 3", last.Seq, err)
	}
	appendRange(t, st, 4, 5, "request", "s1")
	if got := collect(t, st, store.EventFilter{}); len(got) != 5 {
		t.Errorf("after a valid append the log has %d events, want 5", len(got))
	}
}

func testAppendEmpty(t *testing.T, st store.Store) {
	ctx := context.Background()
	if err := st.AppendEvents(ctx, nil); err != nil {
		t.Errorf("AppendEvents(nil): %v", err)
	}
	if _, err := st.LastEvent(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastEvent after an empty append: %v, want ErrNotFound", err)
	}
}

// testConcurrentAppendsAndReads has appenders (serialised on the sequence
// number, as the audit writer is) racing readers that check every snapshot
// they see is a gapless prefix of the log.
func testConcurrentAppendsAndReads(t *testing.T, st store.Store) {
	ctx := context.Background()
	const (
		appenders = 4
		batches   = 40
		batchLen  = 10
		readers   = 4
	)
	var (
		mu      sync.Mutex // hands out sequence numbers and orders appends
		next    = int64(1)
		done    atomic.Bool
		wg, rwg sync.WaitGroup
		errc    = make(chan error, appenders+readers+1)
	)
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range batches {
				mu.Lock()
				var evs []store.Event
				for range batchLen {
					evs = append(evs, event(next, "request", "s1"))
					next++
				}
				err := st.AppendEvents(ctx, evs)
				mu.Unlock()
				if err != nil {
					errc <- fmt.Errorf("AppendEvents: %w", err)
					return
				}
			}
		}()
	}
	for r := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for i := 0; !done.Load(); i++ {
				var prev int64
				err := st.Events(ctx, store.EventFilter{AfterSeq: int64(r)}, func(ev store.Event) error {
					if prev != 0 && ev.Seq != prev+1 {
						return fmt.Errorf("reader saw seq %d after %d", ev.Seq, prev)
					}
					if !bytes.Equal(ev.Data, fmt.Appendf(nil, `{"n":%d}`, ev.Seq)) {
						return fmt.Errorf("reader saw seq %d with data %q", ev.Seq, ev.Data)
					}
					prev = ev.Seq
					return nil
				})
				if err != nil {
					errc <- err
					return
				}
				if _, err := st.LastEvent(ctx); err != nil && !errors.Is(err, store.ErrNotFound) {
					errc <- fmt.Errorf("LastEvent: %w", err)
					return
				}
				if err := st.CreateSession(ctx, session(fmt.Sprintf("r%d-%d", r, i), "alice", base)); err != nil {
					errc <- fmt.Errorf("CreateSession: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rwg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	got := collect(t, st, store.EventFilter{})
	if want := appenders * batches * batchLen; len(got) != want {
		t.Fatalf("log has %d events, want %d", len(got), want)
	}
	for i, ev := range got {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
}
