package main

import (
	"strings"
	"testing"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest"
)

const pkg = "github.com/gatewayd-access/gatewayd/wasm/masking/pii"

func batch(cols []abi.Column, rows ...[]string) *abi.Batch {
	var b abi.Batch
	b.Reset(abi.Rows, cols)
	for _, r := range rows {
		for _, v := range r {
			b.Append([]byte(v), v == "NULL")
		}
	}
	return &b
}

func changed(t *testing.T, c abi.Changes) map[[2]int]string {
	t.Helper()
	m := map[[2]int]string{}
	for _, ch := range c.List {
		v := string(ch.Value)
		if ch.Null {
			v = "NULL"
		}
		m[[2]int{ch.Row, ch.Col}] = v
	}
	return m
}

func TestMasking(t *testing.T) {
	text := func(name string) abi.Column { return abi.Column{Name: name, Type: 25} }
	wasmtest.Both(t, Module(), pkg, `{}`, func(t *testing.T, r wasmtest.Runner) {
		b := batch([]abi.Column{text("name"), text("email"), text("note"), {Name: "ssn", Type: 20, Format: 1}, {Name: "profile", Type: 3802, Format: 1}},
			[]string{"Alice", "alice@example.com", "card 4111 1111 1111 1111, ssn 123-45-6789", "\x00\x00\x00\x00\x07\x5b\xcd\x15", "\x01{\"e\": \"bob@example.org\"}"},
			[]string{"Bob", "NULL", "nothing here", "NULL", "\x01{}"},
		)
		c, err := r.Mask(b)
		if err != nil {
			t.Fatal(err)
		}
		got := changed(t, c)
		if len(got) != 4 {
			t.Fatalf("changes %v", got)
		}
		if v := got[[2]int{0, 1}]; v != "a****@example.com" {
			t.Errorf("email column = %q", v)
		}
		if v := got[[2]int{0, 2}]; strings.Contains(v, "4111 1111 1111 1111") || strings.Contains(v, "123-45") || !strings.Contains(v, "1111") {
			t.Errorf("note = %q", v)
		}
		// A binary bigint under a column rule cannot hold a mask: NULL.
		if v := got[[2]int{0, 3}]; v != "NULL" {
			t.Errorf("binary ssn = %q", v)
		}
		// Binary jsonb keeps its version byte.
		if v := got[[2]int{0, 4}]; !strings.HasPrefix(v, "\x01{") || strings.Contains(v, "bob@") {
			t.Errorf("jsonb = %q", v)
		}
	})
	// Styles and kinds from the config.
	wasmtest.Both(t, Module(), pkg, `{"style": "full", "detect": ["email"], "columns": []}`, func(t *testing.T, r wasmtest.Runner) {
		c, err := r.Mask(batch([]abi.Column{text("x")}, []string{"mail alice@example.com, ssn 123-45-6789"}))
		if err != nil {
			t.Fatal(err)
		}
		got := changed(t, c)[[2]int{0, 0}]
		if strings.Contains(got, "alice") || !strings.Contains(got, "123-45-6789") {
			t.Fatalf("full style, email only: %q", got)
		}
	})
	wasmtest.Both(t, Module(), pkg, `{"style": "hash", "hash_key": "k1"}`, func(t *testing.T, r wasmtest.Runner) {
		c1, _ := r.Mask(batch([]abi.Column{text("x")}, []string{"alice@example.com"}, []string{"alice@example.com"}))
		got := changed(t, c1)
		if got[[2]int{0, 0}] == "" || got[[2]int{0, 0}] != got[[2]int{1, 0}] || strings.Contains(got[[2]int{0, 0}], "alice") {
			t.Fatalf("hash style: %v", got)
		}
	})
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []string{
		`{"style": "hash"}`,
		`{"detect": ["dna"]}`,
		`{"columns": [{"names": ["x"], "kind": "nope"}]}`,
		`{"colums": []}`,
	} {
		if err := Module().Init([]byte(cfg)); err == nil {
			t.Errorf("config %s accepted", cfg)
		}
	}
}

// BenchmarkMaskBatch is one pooled call of 512 rows of five text columns,
// three holding personal data, as the gateway sends them.
func BenchmarkMaskBatch(b *testing.B) {
	cols := []abi.Column{{Name: "id", Type: 23}, {Name: "name", Type: 25}, {Name: "email", Type: 25}, {Name: "ssn", Type: 25}, {Name: "card", Type: 25}}
	var rows [][]string
	for range 512 {
		rows = append(rows, []string{"42", "Person 42", "user42@example.com", "123-45-6789", "4111 1111 1111 1111"})
	}
	bt := batch(cols, rows...)
	for _, which := range []string{"native", "wasm"} {
		b.Run(which, func(b *testing.B) {
			var r wasmtest.Runner
			if which == "native" {
				r = wasmtest.Native(b, Module(), `{}`)
			} else {
				r = wasmtest.WasmUninterruptible(b, wasmtest.Build(b, pkg), `{}`)
			}
			defer r.Close()
			for b.Loop() {
				if _, err := r.Mask(bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/row")
		})
	}
}
