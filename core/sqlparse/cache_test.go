package sqlparse

import (
	"reflect"
	"testing"
)

func TestNumbersZeroed(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", "SELECT abalance FROM pgbench_accounts WHERE aid = 0;", true},
		{"SELECT 1.5, -7, 0, 10 FROM t1 LIMIT 20", "SELECT 0.0, -0, 0, 0 FROM t1 LIMIT 0", true},
		{"SELECT 1e5, 0x1F, 1_000, x2, 2x FROM t", "SELECT 1e5, 0x1F, 1_000, x2, 2x FROM t", true},
		{"SELECT * FROM t WHERE a = $1", "", false},
		{"SELECT '42'", "", false},
		{`SELECT "t 1".x`, "", false},
		{"SELECT 1 -- 2", "", false},
		{"SELECT 1 /* 2 */", "", false},
		{"DO $$ BEGIN PERFORM 1; END $$", "", false},
		{"SELECT 1 FROM té", "", false},
	} {
		got, ok := numbersZeroed(tc.in)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("numbersZeroed(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// Statements that differ only in numbers share an entry, and the entry is
// the analysis of each of them.
func TestCacheSharesNumberVariants(t *testing.T) {
	c := NewCache(100, 1<<20)
	a, err := c.Parse("SELECT * FROM accounts WHERE id = 1 LIMIT 10")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Parse("SELECT * FROM accounts WHERE id = 99 LIMIT 5")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != 1 || &a[0] != &b[0] {
		t.Fatalf("entries = %d; shared = %v", len(c.entries), &a[0] == &b[0])
	}
	direct, _ := Parse("SELECT * FROM accounts WHERE id = 99 LIMIT 5")
	if !reflect.DeepEqual(direct, b) {
		t.Fatalf("cached %+v, parsed %+v", b, direct)
	}
	// Errors are kept for their exact text only.
	if _, err := c.Parse("SELEC 1"); err == nil {
		t.Fatal("no error")
	}
	if len(c.entries) != 1 {
		t.Fatalf("an error under a shared key was cached")
	}
}

// FuzzNumbersZeroed checks the property the cache relies on: a text and its
// numbers-zeroed key have the same analysis.
func FuzzNumbersZeroed(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 12345",
		"SELECT 1.5 + 2 FROM t1 ORDER BY 1 LIMIT 10 OFFSET 5",
		"CREATE TABLE t (a varchar(10), b numeric(5,2))",
		"SELECT a[1], b[2:3] FROM t WHERE c IN (1, 2, 3)",
		"FETCH 5 FROM c; MOVE 10 IN c",
		"SELECT 1e5, 0x1F, 1_000, .5, 5., 1.2.3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		key, ok := numbersZeroed(text)
		if !ok {
			return
		}
		want, err := Parse(text)
		if err != nil {
			return
		}
		got, err := Parse(key)
		if err != nil {
			t.Fatalf("%q parses but its key %q does not: %v", text, key, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%q and its key %q differ:\n%+v\n%+v", text, key, want, got)
		}
	})
}
