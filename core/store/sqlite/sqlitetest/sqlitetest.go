// Package sqlitetest changes the audit log of an SQLite store (package
// sqlite) behind the store's back, through database/sql, as someone with
// write access to the database file could: for tests that check that such
// tampering is detected. It keeps the layout consistent (a block's
// first_seq and last_seq, the session lookup table), so that the store reads
// the tampered events as they were written.
package sqlitetest

import (
	"context"
	"database/sql"
	"net/url"
	"slices"
	"testing"

	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite/internal/block"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// EditEvent applies edit to event seq and stores the result in place of the
// event, in its block. edit may change any field, Seq included.
func EditEvent(t testing.TB, path string, seq int64, edit func(*store.Event)) {
	t.Helper()
	withTx(t, path, func(tx *sql.Tx) {
		first, evs := blockOf(t, tx, seq)
		edit(&evs[slices.IndexFunc(evs, func(ev store.Event) bool { return ev.Seq == seq })])
		deleteBlock(t, tx, first)
		insertBlock(t, tx, evs)
	})
}

// DeleteEvent removes event seq from its block (and the block if it held
// nothing else).
func DeleteEvent(t testing.TB, path string, seq int64) {
	t.Helper()
	withTx(t, path, func(tx *sql.Tx) {
		first, evs := blockOf(t, tx, seq)
		deleteBlock(t, tx, first)
		insertBlock(t, tx, slices.DeleteFunc(evs, func(ev store.Event) bool { return ev.Seq == seq }))
	})
}

// EditLog replaces the whole log, in sequence order, by what edit returns,
// stored in order in blocks of the sizes the log had (the last one taking
// any excess).
func EditLog(t testing.TB, path string, edit func([]store.Event) []store.Event) {
	t.Helper()
	withTx(t, path, func(tx *sql.Tx) {
		rows, err := tx.Query(`SELECT data FROM event_blocks ORDER BY first_seq`)
		if err != nil {
			t.Fatalf("tampering: reading blocks: %v", err)
		}
		var (
			evs   []store.Event
			sizes []int
		)
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				t.Fatalf("tampering: reading blocks: %v", err)
			}
			b, err := block.Decode(data)
			if err != nil {
				t.Fatalf("tampering: %v", err)
			}
			evs = append(evs, b...)
			sizes = append(sizes, len(b))
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("tampering: reading blocks: %v", err)
		}
		evs = edit(evs)
		for _, q := range []string{`DELETE FROM event_sessions`, `DELETE FROM event_blocks`} {
			if _, err := tx.Exec(q); err != nil {
				t.Fatalf("tampering: %s: %v", q, err)
			}
		}
		for i, n := range sizes {
			if i == len(sizes)-1 || n > len(evs) {
				n = len(evs)
			}
			insertBlock(t, tx, evs[:n])
			evs = evs[n:]
		}
		insertBlock(t, tx, evs) // a log that was empty
	})
}

func withTx(t testing.TB, path string, fn func(*sql.Tx)) {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatalf("tampering: %v", err)
	}
	defer db.Close()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatalf("tampering: %v", err)
	}
	defer tx.Rollback() // after a t.Fatal in fn
	fn(tx)
	if err := tx.Commit(); err != nil {
		t.Fatalf("tampering: committing: %v", err)
	}
}

// blockOf returns the first_seq and the events of the block holding seq.
func blockOf(t testing.TB, tx *sql.Tx, seq int64) (int64, []store.Event) {
	t.Helper()
	var (
		first int64
		data  []byte
	)
	err := tx.QueryRow(`SELECT first_seq, data FROM event_blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1`, seq).
		Scan(&first, &data)
	if err != nil {
		t.Fatalf("tampering: finding the block of event %d: %v", seq, err)
	}
	evs, err := block.Decode(data)
	if err != nil {
		t.Fatalf("tampering: %v", err)
	}
	if !slices.ContainsFunc(evs, func(ev store.Event) bool { return ev.Seq == seq }) {
		t.Fatalf("tampering: no event %d in the block from %d", seq, first)
	}
	return first, evs
}

func deleteBlock(t testing.TB, tx *sql.Tx, first int64) {
	t.Helper()
	for _, q := range []string{`DELETE FROM event_sessions WHERE first_seq = ?`, `DELETE FROM event_blocks WHERE first_seq = ?`} {
		if _, err := tx.Exec(q, first); err != nil {
			t.Fatalf("tampering: deleting block %d: %v", first, err)
		}
	}
}

// insertBlock stores evs (if any) as one block, as the store would.
func insertBlock(t testing.TB, tx *sql.Tx, evs []store.Event) {
	t.Helper()
	if len(evs) == 0 {
		return
	}
	first, last := evs[0].Seq, evs[len(evs)-1].Seq
	if _, err := tx.Exec(`INSERT INTO event_blocks (first_seq, last_seq, data) VALUES (?, ?, ?)`,
		first, last, block.Append(nil, evs)); err != nil {
		t.Fatalf("tampering: writing block %d: %v", first, err)
	}
	seen := map[string]bool{"": true}
	for _, ev := range evs {
		if seen[ev.SessionID] {
			continue
		}
		seen[ev.SessionID] = true
		if _, err := tx.Exec(`INSERT INTO event_sessions (session_id, first_seq) VALUES (?, ?)`, ev.SessionID, first); err != nil {
			t.Fatalf("tampering: writing block %d: %v", first, err)
		}
	}
}
