package storetest

import (
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

var revocationTests = []struct {
	name string
	fn   func(t *testing.T, st store.Store)
}{
	{"RevocationsKeptUntilExpiry", testRevocationsKeptUntilExpiry},
}

func testRevocationsKeptUntilExpiry(t *testing.T, st store.Store) {
	// RevokeToken may forget what expired by the clock: work from now.
	base := time.Now().In(base.Location())
	if got, err := st.RevokedTokens(base); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v", got, err)
	}
	for _, r := range []struct {
		id      string
		expires time.Time
	}{
		{"a", base.Add(time.Hour)},
		{"gone", base.Add(-time.Second)},
		{"b", base.Add(time.Minute)},
		{"a", base.Add(2 * time.Hour)}, // revoking again moves the expiry
	} {
		if err := st.RevokeToken(r.id, r.expires); err != nil {
			t.Fatalf("RevokeToken(%s): %v", r.id, err)
		}
	}
	got, err := st.RevokedTokens(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["a"].Equal(base.Add(2*time.Hour)) || !got["b"].Equal(base.Add(time.Minute)) ||
		got["a"].Location() != time.UTC {
		t.Fatalf("RevokedTokens = %v, want a (+2h, UTC) and b (+1m)", got)
	}
	// Later, b has expired too.
	if got, err := st.RevokedTokens(base.Add(30 * time.Minute).Add(time.Hour)); err != nil || len(got) != 1 || got["b"] != (time.Time{}) {
		t.Fatalf("RevokedTokens after b expired = %v %v", got, err)
	}
}
