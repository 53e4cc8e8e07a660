package main

import (
	"fmt"
	"testing"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest"
)

func TestKeepLast(t *testing.T) {
	wasmtest.Both(t, module, ".", `{"keep_last": 2}`, func(t *testing.T, r wasmtest.Runner) {
		var b abi.Batch
		b.Reset(abi.Rows, []abi.Column{{Name: "note", Type: 25}})
		b.Append([]byte("ask EMP-123456, not EMP-1234567"), false)
		c, err := r.Mask(&b)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.List) != 1 || string(c.List[0].Value) != "ask EMP-****56, not EMP-1234567" {
			t.Errorf("got %+v", c.List)
		}
	})
}

func TestMask(t *testing.T) {
	tests := []struct{ in, keep0, keep2 string }{
		{"EMP-123456", "EMP-******", "EMP-****56"},
		{"ask EMP-123456, then EMP-654321.", "ask EMP-******, then EMP-******.", "ask EMP-****56, then EMP-****21."},
		{"(EMP-000001)", "(EMP-******)", "(EMP-****01)"},
		{"EMP-1234567", "", ""}, // seven digits
		{"EMP-12345", "", ""},   // five
		{"XEMP-123456", "", ""}, // no word boundary before
		{"EMP-123456_", "", ""}, // nor after
		{"emp-123456", "", ""},  // case matters
		{"EMP-12a456", "", ""},  // not all digits
		{"EMP-EMP-123456", "EMP-EMP-******", "EMP-EMP-****56"},
		{"", "", ""},
	}
	for _, keep := range []int{0, 2} {
		config := fmt.Sprintf(`{"keep_last": %d}`, keep)
		t.Run(config, func(t *testing.T) {
			wasmtest.Both(t, module, ".", config, func(t *testing.T, r wasmtest.Runner) {
				b := &abi.Batch{}
				b.Reset(abi.Rows, []abi.Column{{Name: "note", Type: 25}})
				for _, tt := range tests {
					b.Append([]byte(tt.in), false)
				}
				c, err := r.Mask(b)
				if err != nil {
					t.Fatal(err)
				}
				got := map[int]string{}
				for _, ch := range c.List {
					got[ch.Row] = string(ch.Value)
				}
				for row, tt := range tests {
					want := tt.keep0
					if keep == 2 {
						want = tt.keep2
					}
					if got[row] != want {
						t.Errorf("%q: got %q, want %q", tt.in, got[row], want)
					}
				}
			})
		})
	}
}

// TestColumns: text values in any column are masked, binary values only of
// text-like types; NULLs and other values are left alone.
func TestColumns(t *testing.T) {
	wasmtest.Both(t, module, ".", "", func(t *testing.T, r wasmtest.Runner) {
		const id = "EMP-123456"
		b := &abi.Batch{}
		b.Reset(abi.Rows, []abi.Column{
			{Name: "text", Type: 25},
			{Name: "int4 as text", Type: 23},
			{Name: "bytea", Type: 17, Format: 1},
			{Name: "varchar", Type: 1043, Format: 1},
			{Name: "jsonb", Type: 3802, Format: 1},
		})
		b.Append([]byte(id), false)
		b.Append([]byte(id), false)
		b.Append([]byte(id), false)
		b.Append([]byte(id), false)
		b.Append([]byte("\x01\""+id+"\""), false)
		for range 5 {
			b.Append(nil, true)
		}
		c, err := r.Mask(b)
		if err != nil {
			t.Fatal(err)
		}
		want := []abi.Change{
			{Row: 0, Col: 0, Value: []byte("EMP-******")},
			{Row: 0, Col: 1, Value: []byte("EMP-******")},
			{Row: 0, Col: 3, Value: []byte("EMP-******")},
			{Row: 0, Col: 4, Value: []byte("\x01\"EMP-******\"")},
		}
		if fmt.Sprint(c.List) != fmt.Sprint(want) || c.Action != abi.Allow {
			t.Errorf("got %v %v, want %v", c.Action, c.List, want)
		}
	})
}

func TestConfig(t *testing.T) {
	defer func() { keepLast = 0 }()
	for _, config := range []string{`{}`, `{"keep_last": 0}`, `{"keep_last": 6}`} {
		if err := configure([]byte(config)); err != nil {
			t.Errorf("%s: %v", config, err)
		}
	}
	for _, config := range []string{`{"keep_last": 7}`, `{"keep_last": -1}`, `{"keep_last": "2"}`, `{"keep": 2}`, `[]`} {
		if err := configure([]byte(config)); err == nil {
			t.Errorf("%s: no error", config)
		}
	}
}

// BenchmarkMask measures one Mask call on an instance kept from call to
// call (as the gateway pools them): natively and in wasm, for a batch of
// one value and for 512 rows of three columns where nothing changes.
func BenchmarkMask(b *testing.B) {
	batches := []struct {
		name string
		rows int
	}{{"1x1", 1}, {"512x3", 512}}
	for _, how := range []string{"native", "wasm"} {
		for _, bb := range batches {
			b.Run(how+"/"+bb.name, func(b *testing.B) {
				batch := &abi.Batch{Session: abi.Session{ID: "0b6c1a2e-5d1f", Identity: "ada",
					Email: "ada@example.com", Groups: []string{"engineering"}, Connection: "app-pg", Protocol: "postgres"}}
				if bb.rows == 1 {
					batch.Reset(abi.Rows, []abi.Column{{Name: "note", Type: 25}})
					batch.Append([]byte("nothing to see"), false)
				} else {
					batch.Reset(abi.Rows, []abi.Column{{Name: "id", Type: 23}, {Name: "name", Type: 25}, {Name: "email", Type: 1043}})
					for i := range bb.rows {
						batch.Append(fmt.Appendf(nil, "%d", 100000+i), false)
						batch.Append(fmt.Appendf(nil, "Employee number %d", i), false)
						batch.Append(fmt.Appendf(nil, "employee.%d@example.com", i), false)
					}
				}
				var r wasmtest.Runner
				if how == "native" {
					r = wasmtest.Native(b, module, "")
				} else {
					r = wasmtest.Wasm(b, wasmtest.Build(b, "."), "")
				}
				for b.Loop() {
					if _, err := r.Mask(batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
			})
		}
	}
}
