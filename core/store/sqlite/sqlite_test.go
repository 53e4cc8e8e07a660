package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
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
	if _, err := st.read.Exec(`DELETE FROM events`); err == nil {
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

// BenchmarkAppendEvents measures the store's side of the audit writer's
// group commit: one transaction of 512 events.
func BenchmarkAppendEvents(b *testing.B) {
	for _, bc := range []struct {
		name  string
		sizes [len(insertSizes)]int
	}{
		{"multi-row", insertSizes},
		{"row-by-row", [len(insertSizes)]int{1, 1, 1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			saved := insertSizes
			insertSizes = bc.sizes
			defer func() { insertSizes = saved }()
			st, err := Open(filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			const batch = 512
			evs := make([]store.Event, batch)
			data := []byte(`{"kind":"query","text":"SELECT id, name FROM users WHERE id = $1","started":"2025-01-01T00:00:00.123456789Z","duration_ns":120000,"rows":1,"outcome":"ok","tag":"SELECT 1"}`)
			seq := int64(0)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				for i := range evs {
					seq++
					evs[i] = store.Event{Seq: seq, Time: time.Unix(0, seq), Kind: "request", SessionID: "0192d3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
						Identity: "alice@example.com", Connection: "pg-prod", Data: data,
						PrevHash: "3f0c1b9e0d1f4f7c8a2b6e5d4c3b2a19081726354453627180a9b8c7d6e5f4a3", Hash: "3f0c1b9e0d1f4f7c8a2b6e5d4c3b2a19081726354453627180a9b8c7d6e5f4a3"}
				}
				if err := st.AppendEvents(ctx, evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
