package sqlitetest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite/sqlitetest"
)

func event(seq int64) store.Event {
	return store.Event{Seq: seq, Time: time.Unix(0, seq).UTC(), Kind: "request", SessionID: fmt.Sprint("s", seq%2),
		Data: fmt.Appendf(nil, `{"n":%d}`, seq), PrevHash: fmt.Sprint("h", seq-1), Hash: fmt.Sprint("h", seq)}
}

// seqs returns the sequence numbers Events returns for f, with the
// identities of the events in brackets where they are not empty.
func seqs(t *testing.T, st store.Store, f store.EventFilter) string {
	t.Helper()
	var out []string
	err := st.Events(context.Background(), f, func(ev store.Event) error {
		s := fmt.Sprint(ev.Seq)
		if ev.Identity != "" {
			s += "[" + ev.Identity + "]"
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	return fmt.Sprint(out)
}

func TestTamper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, batch := range [][]int64{{1, 2, 3, 4}, {5}, {6, 7, 8}} {
		var evs []store.Event
		for _, seq := range batch {
			evs = append(evs, event(seq))
		}
		if err := st.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}

	sqlitetest.EditEvent(t, path, 3, func(ev *store.Event) { ev.Identity = "mallory" })
	sqlitetest.EditEvent(t, path, 7, func(ev *store.Event) { ev.SessionID = "s9" })
	if got, want := seqs(t, st, store.EventFilter{}), "[1 2 3[mallory] 4 5 6 7 8]"; got != want {
		t.Errorf("after EditEvent: %s, want %s", got, want)
	}
	if got, want := seqs(t, st, store.EventFilter{SessionID: "s9"}), "[7]"; got != want {
		t.Errorf("after moving 7 to session s9: %s, want %s", got, want)
	}

	sqlitetest.DeleteEvent(t, path, 1)
	sqlitetest.DeleteEvent(t, path, 5)
	if got, want := seqs(t, st, store.EventFilter{}), "[2 3[mallory] 4 6 7 8]"; got != want {
		t.Errorf("after DeleteEvent: %s, want %s", got, want)
	}
	if got, want := seqs(t, st, store.EventFilter{AfterSeq: 2}), "[3[mallory] 4 6 7 8]"; got != want {
		t.Errorf("after DeleteEvent, from 3: %s, want %s", got, want)
	}

	sqlitetest.EditLog(t, path, func(evs []store.Event) []store.Event {
		return slices.DeleteFunc(evs, func(ev store.Event) bool { return ev.Seq == 4 || ev.Seq == 6 })
	})
	if got, want := seqs(t, st, store.EventFilter{}), "[2 3[mallory] 7 8]"; got != want {
		t.Errorf("after EditLog: %s, want %s", got, want)
	}
	if got, want := seqs(t, st, store.EventFilter{SessionID: "s0"}), "[2 8]"; got != want {
		t.Errorf("session s0 after EditLog: %s, want %s", got, want)
	}
	last, err := st.LastEvent(ctx)
	if err != nil || last.Seq != 8 {
		t.Errorf("LastEvent = %d, %v; want 8", last.Seq, err)
	}
}
