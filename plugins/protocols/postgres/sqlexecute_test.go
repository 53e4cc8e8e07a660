package postgres

import (
	"slices"
	"testing"
)

func TestExecuteTargets(t *testing.T) {
	for _, tc := range []struct {
		sql   string
		names []string
		ok    bool
	}{
		{"SELECT 1", nil, true},
		{"EXECUTE del(1)", []string{"del"}, true},
		{"execute DEL", []string{"del"}, true},
		{`EXECUTE "Del"(1)`, []string{"Del"}, true},
		{`EXECUTE "a""b"`, []string{`a"b`}, true},
		{"/* c */ EXPLAIN ANALYZE execute/* x /* nested */ y */ -- z\n del (1)", []string{"del"}, true},
		{"CREATE TABLE t AS EXECUTE s1; SELECT 2; EXECUTE s2", []string{"s1", "s2"}, true},
		{"SELECT 'EXECUTE del(1)'", []string{"del"}, true},
		{"SELECT executed FROM t", nil, true},
		{"SELECT x_execute FROM t", nil, true},
		{`EXECUTE U&"d\0065l"(1)`, nil, false},
		{"EXECUTE 'del'", nil, false},
		{"EXECUTE /* unterminated", nil, false},
		{"EXECUTE", nil, false},
	} {
		names, ok := executeTargets(tc.sql)
		if ok != tc.ok || !slices.Equal(names, tc.names) {
			t.Errorf("executeTargets(%q) = %q, %v; want %q, %v", tc.sql, names, ok, tc.names, tc.ok)
		}
	}
	long := "s" + string(make([]byte, 70))
	if !sameName(long[:63]+"x", long[:63]+"y") || sameName("a", "b") {
		t.Error("sameName does not compare the first 63 bytes")
	}
}

func FuzzExecuteTargets(f *testing.F) {
	f.Add("EXECUTE /* a */ \"b\"(1)")
	f.Fuzz(func(t *testing.T, s string) { executeTargets(s) })
}
