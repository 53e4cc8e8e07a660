package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return st
	})
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "state?#1.db") // URI metacharacters in the name
	st, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	if err := st.CreateSession(context.Background(), store.Session{ID: "s1"}); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{path, 0o600},
		{path + "-wal", 0o600},
		{path + "-shm", 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s has mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
}

func TestPragmas(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	for _, db := range []*sql.DB{st.write, st.read} {
		var mode string
		var fk, busy int
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || fk != 1 || busy != 5000 {
			t.Errorf("journal_mode=%s foreign_keys=%d busy_timeout=%d, want wal 1 5000", mode, fk, busy)
		}
	}
	var sync int
	if err := st.write.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != 1 {
		t.Errorf("writer synchronous=%d, want 1 (NORMAL)", sync)
	}
	if _, err := st.read.Exec(`DELETE FROM event_blocks`); err == nil {
		t.Errorf("the read pool accepted a write")
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var v int
	if err := st.read.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Errorf("schema_version = %d, want %d", v, len(migrations))
	}
	// Reopening an up-to-date database migrates nothing and keeps the data.
	if err := st.CreateSession(context.Background(), store.Session{ID: "kept"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = Open(path)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	if _, err := st.Session(context.Background(), "kept"); err != nil {
		t.Errorf("session lost across reopen: %v", err)
	}
	// A database from a newer gatewayd is refused.
	if _, err := st.write.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer schema") {
		t.Errorf("Open of a newer schema: error = %v, want a refusal", err)
	}
}

func openTest(t *testing.T) *Store {
	t.Helper()
	st, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testEvent is event seq of a log where sessions interleave.
func testEvent(seq int64, dataLen int) store.Event {
	kinds := []string{"request", "request", "session.start", "request", "auth.ok"}
	sid := fmt.Sprintf("s%d", seq%5)
	if seq%7 == 0 {
		sid = "" // outside a session
	}
	data := make([]byte, dataLen)
	for i := range data {
		data[i] = byte('a' + (seq+int64(i))%26)
	}
	return store.Event{Seq: seq, Time: time.Unix(1741964966, seq*1000+int64(seq%3)).UTC(), Kind: kinds[seq%int64(len(kinds))],
		SessionID: sid, Identity: fmt.Sprintf("user%d", seq%3), Connection: "db", Data: data,
		PrevHash: fmt.Sprintf("%064x", seq-1), Hash: fmt.Sprintf("%064x", seq)}
}

func appendTest(t *testing.T, st *Store, from, to int64, dataLen int) []store.Event {
	t.Helper()
	var evs []store.Event
	for seq := from; seq <= to; seq++ {
		evs = append(evs, testEvent(seq, dataLen))
	}
	if err := st.AppendEvents(context.Background(), evs); err != nil {
		t.Fatalf("AppendEvents(%d..%d): %v", from, to, err)
	}
	return evs
}

// blockRows returns the rows of event_blocks as first_seq-last_seq, and the
// rows of event_sessions as session_id@first_seq.
func blockRows(t *testing.T, st *Store) (blocks, sessions []string) {
	t.Helper()
	rows, err := st.read.Query(`SELECT first_seq, last_seq FROM event_blocks ORDER BY first_seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var first, last int64
		if err := rows.Scan(&first, &last); err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, fmt.Sprintf("%d-%d", first, last))
	}
	rows.Close()
	rows, err = st.read.Query(`SELECT session_id, first_seq FROM event_sessions ORDER BY first_seq, session_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var first int64
		if err := rows.Scan(&id, &first); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, fmt.Sprintf("%s@%d", id, first))
	}
	rows.Close()
	return blocks, sessions
}

func TestBlockLayout(t *testing.T) {
	st := openTest(t)
	appendTest(t, st, 1, 8, 10)
	appendTest(t, st, 9, 9, 10)
	appendTest(t, st, 10, 12, 10)
	blocks, sessions := blockRows(t, st)
	if want := "[1-8 9-9 10-12]"; fmt.Sprint(blocks) != want {
		t.Errorf("blocks %v, want %s (one per AppendEvents)", blocks, want)
	}
	// Sessions s0..s4 by seq%5, none for seq 7 (and 14, ...).
	if want := "[s0@1 s1@1 s2@1 s3@1 s4@1 s4@9 s0@10 s1@10 s2@10]"; fmt.Sprint(sessions) != want {
		t.Errorf("session rows %v, want %s", sessions, want)
	}
}

func TestBlockSplit(t *testing.T) {
	st := openTest(t)
	want := appendTest(t, st, 1, maxBlockEvents+10, 1)
	// Three events of which two fit in maxBlockBytes, then a larger one
	// alone, then one more.
	n := int64(len(want))
	third := maxBlockBytes / 3
	var big []store.Event
	for i, size := range []int{third, third, maxBlockBytes + 1, 1} {
		big = append(big, testEvent(n+1+int64(i), size))
	}
	if err := st.AppendEvents(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	want = append(want, big...)
	blocks, _ := blockRows(t, st)
	wantBlocks := fmt.Sprintf("[1-%d %d-%d %d-%d %d-%d %d-%d]", maxBlockEvents, maxBlockEvents+1, n, n+1, n+2, n+3, n+3, n+4, n+4)
	if fmt.Sprint(blocks) != wantBlocks {
		t.Errorf("blocks %v, want %s", blocks, wantBlocks)
	}
	checkEvents(t, st, want)
}

// checkEvents compares what Events returns for a range of filters, and
// LastEvent, with the log want.
func checkEvents(t *testing.T, st *Store, want []store.Event) {
	t.Helper()
	last := want[len(want)-1].Seq
	var filters []store.EventFilter
	for _, after := range []int64{0, 1, 6, 7, 8, 9, 500, 513, last / 2, last - 1, last, last + 5} {
		filters = append(filters,
			store.EventFilter{AfterSeq: after},
			store.EventFilter{AfterSeq: after, Kind: "session.start"},
			store.EventFilter{AfterSeq: after, SessionID: "s3"},
			store.EventFilter{AfterSeq: after, SessionID: "s1", Kind: "auth.ok"})
	}
	filters = append(filters, store.EventFilter{Kind: "nope"}, store.EventFilter{SessionID: "nope"},
		store.EventFilter{AfterSeq: -5}, store.EventFilter{AfterSeq: math.MaxInt64}, store.EventFilter{AfterSeq: math.MinInt64})
	for _, f := range filters {
		var exp []store.Event
		for _, ev := range want {
			if ev.Seq > f.AfterSeq && (f.Kind == "" || ev.Kind == f.Kind) && (f.SessionID == "" || ev.SessionID == f.SessionID) {
				exp = append(exp, ev)
			}
		}
		i := 0
		err := st.Events(context.Background(), f, func(ev store.Event) error {
			if i >= len(exp) {
				return fmt.Errorf("extra event %d", ev.Seq)
			}
			if !reflect.DeepEqual(ev, exp[i]) {
				return fmt.Errorf("event %d = seq %d, want %d", i, ev.Seq, exp[i].Seq)
			}
			i++
			return nil
		})
		if err != nil || i != len(exp) {
			t.Errorf("Events(%+v): %d events of %d, %v", f, i, len(exp), err)
		}
	}
	ev, err := st.LastEvent(context.Background())
	if err != nil || !reflect.DeepEqual(ev, want[len(want)-1]) {
		t.Errorf("LastEvent = seq %d, %v; want %d", ev.Seq, err, want[len(want)-1].Seq)
	}
}

// TestEventsPages reads logs of many small blocks, and of blocks larger
// than a page, so that pages end within and at the ends of blocks.
func TestEventsPages(t *testing.T) {
	t.Run("small blocks", func(t *testing.T) {
		st := openTest(t)
		var want []store.Event
		for seq := int64(1); seq <= 1500; {
			n := 1 + seq%13
			want = append(want, appendTest(t, st, seq, seq+n-1, 20)...)
			seq += n
		}
		checkEvents(t, st, want)
	})
	t.Run("large blocks", func(t *testing.T) {
		st := openTest(t)
		var want []store.Event
		for seq := int64(1); seq <= 1200; seq += 300 {
			want = append(want, appendTest(t, st, seq, seq+299, 2000)...) // 600 KB
		}
		checkEvents(t, st, want)
	})
}

// TestQueryPlans checks that reads find blocks by primary key: the block of
// AfterSeq, and the blocks of one session, without scanning.
func TestQueryPlans(t *testing.T) {
	st := openTest(t)
	for _, c := range []struct {
		q    string
		args []any
		want string
	}{
		{`SELECT first_seq FROM event_blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1`, []any{5},
			"SEARCH event_blocks USING INTEGER PRIMARY KEY (rowid<?)"},
		{`SELECT first_seq, data FROM event_blocks WHERE first_seq >= ? AND last_seq > ? ORDER BY first_seq`, []any{5, 4},
			"SEARCH event_blocks USING INTEGER PRIMARY KEY (rowid>?)"},
		{`SELECT b.first_seq, b.data FROM event_sessions s CROSS JOIN event_blocks b ON b.first_seq = s.first_seq
		WHERE s.session_id = ? AND s.first_seq >= ? AND b.last_seq > ? ORDER BY s.first_seq`, []any{"s1", 5, 4},
			"SEARCH s USING PRIMARY KEY (session_id=? AND first_seq>?)\nSEARCH b USING INTEGER PRIMARY KEY (rowid=?)"},
	} {
		rows, err := st.read.Query(`EXPLAIN QUERY PLAN `+c.q, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if got := strings.Join(plan, "\n"); got != c.want {
			t.Errorf("plan of %s:\n%s\nwant\n%s", c.q, got, c.want)
		}
	}
}

func TestCorruptBlock(t *testing.T) {
	st := openTest(t)
	appendTest(t, st, 1, 10, 10)
	appendTest(t, st, 11, 20, 10)
	if _, err := st.write.Exec(`UPDATE event_blocks SET data = substr(data, 1, length(data) - 3) WHERE first_seq = 11`); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := st.Events(context.Background(), store.EventFilter{}, func(store.Event) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "corrupt event block") {
		t.Errorf("Events over a corrupt block: error %v", err)
	}
	if _, err := st.LastEvent(context.Background()); err == nil || !strings.Contains(err.Error(), "corrupt event block") {
		t.Errorf("LastEvent of a corrupt block: error %v", err)
	}
	// The writer reads only last_seq: the chain goes on.
	appendTest(t, st, 21, 21, 10)
}

// BenchmarkAppendEvents measures the store's side of the audit writer's
// group commit: one AppendEvents of 300 events of about 250 bytes of data,
// a session id per 8 events (many sessions interleave on a busy gateway).
func BenchmarkAppendEvents(b *testing.B) {
	st, err := Open(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const batch = 300
	evs := make([]store.Event, batch)
	data := []byte(`{"kind":"query","text":"SELECT id, name, email FROM users WHERE id = $1 AND tenant = $2","started":"2025-01-01T00:00:00.123456789Z","duration_ns":120000,"rows":1,"outcome":"ok","tag":"SELECT 1","error_code":"","x":"0123456789012345678901234567890123"}`)
	hash := "3f0c1b9e0d1f4f7c8a2b6e5d4c3b2a19081726354453627180a9b8c7d6e5f4a3"
	seq := int64(0)
	ctx := context.Background()
	b.SetBytes(int64(batch * len(data)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer() // building the batch is the writer's cost, not the store's
		for i := range evs {
			seq++
			evs[i] = store.Event{Seq: seq, Time: time.Unix(1735689600, seq), Kind: "request",
				SessionID: fmt.Sprintf("0192d3c4-5e6f-7a8b-9c0d-%012x", seq/8),
				Identity:  "alice@example.com", Connection: "pg-prod", Data: data,
				PrevHash: hash, Hash: hash}
		}
		b.StartTimer()
		if err := st.AppendEvents(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
