package abi

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The seed corpora under testdata/fuzz are written by
//
//	go test -run TestSeedCorpus -update-corpus
var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora under testdata/fuzz")

func seedRequests() map[string][]byte {
	req, short := sampleRequest(), Request{Kind: ShellExec, Text: "ls -l"}
	return map[string][]byte{
		"sample": AppendRequest(nil, &req),
		"short":  AppendRequest(nil, &short),
		"empty":  AppendRequest(nil, &Request{}),
	}
}

func seedBatches() map[string][]byte {
	b := sampleBatch()
	var empty, nulls Batch
	empty.Reset(Output, []Column{{Name: "output"}})
	nulls.Reset(Rows, []Column{{Name: "a"}, {Name: "b"}})
	for range 4 {
		nulls.Append(nil, true)
	}
	return map[string][]byte{
		"sample": AppendBatch(nil, &b),
		"empty":  AppendBatch(nil, &empty),
		"nulls":  AppendBatch(nil, &nulls),
	}
}

type changesSeed struct {
	enc        []byte
	rows, cols uint16
}

func seedChanges() map[string]changesSeed {
	c := sampleChanges()
	return map[string]changesSeed{
		"sample":    {AppendChanges(nil, &c), 2, 3},
		"none":      {AppendChanges(nil, &Changes{}), 0, 0},
		"terminate": {AppendChanges(nil, &Changes{Action: Terminate, Reason: "no"}), 1, 1},
	}
}

// TestSeedCorpus checks (or, with -update-corpus, writes) the seed corpora.
func TestSeedCorpus(t *testing.T) {
	files := map[string]string{}
	for name, enc := range seedRequests() {
		files[filepath.Join("FuzzDecodeRequest", name)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", enc)
	}
	for name, enc := range seedBatches() {
		files[filepath.Join("FuzzDecodeBatch", name)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", enc)
	}
	for name, s := range seedChanges() {
		files[filepath.Join("FuzzDecodeChanges", name)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(%d)\nuint16(%d)\n", s.enc, s.rows, s.cols)
	}
	for name, want := range files {
		path := filepath.Join("testdata", "fuzz", name)
		if *updateCorpus {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v): run go test -run TestSeedCorpus -update-corpus", path, err)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
		if DecodeRequest(data, &req) != nil {
			return
		}
		// What decodes re-encodes to the same bytes, less any trailing ones.
		enc := AppendRequest(nil, &req)
		if !bytes.HasPrefix(data, enc) {
			t.Fatalf("re-encoding %x gave %x", data, enc)
		}
		var again Request
		if err := DecodeRequest(enc, &again); err != nil {
			t.Fatal(err)
		}
		normalize(&req)
		normalize(&again)
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("decoded %+v, then %+v", req, again)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		if DecodeBatch(data, &b) != nil {
			return
		}
		if len(b.Columns) == 0 && b.Rows() != 0 {
			t.Fatalf("%d rows of no column", b.Rows())
		}
		total := 0
		for row := range b.Rows() {
			for col := range b.Columns {
				v, null := b.Value(row, col)
				if null && v != nil {
					t.Fatalf("(%d, %d): NULL with bytes", row, col)
				}
				total += len(v)
			}
		}
		if total > len(data) {
			t.Fatalf("values of %d bytes from %d bytes", total, len(data))
		}
		// A decoded batch re-encodes to the same bytes (trailing ones
		// included: they ride along after the values).
		if enc := AppendBatch(nil, &b); !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding %x gave %x", data, enc)
		}
	})
}

func FuzzDecodeChanges(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, rows, cols uint16) {
		var c Changes
		if DecodeChanges(data, &c, int(rows), int(cols)) != nil {
			return
		}
		if c.Action != Allow && c.Action != Terminate {
			t.Fatalf("action %v", c.Action)
		}
		last := -1
		for _, ch := range c.List {
			if ch.Row < 0 || ch.Row >= int(rows) || ch.Col < 0 || ch.Col >= int(cols) {
				t.Fatalf("change (%d, %d) outside %d×%d", ch.Row, ch.Col, rows, cols)
			}
			if i := ch.Row*int(cols) + ch.Col; i <= last {
				t.Fatalf("change (%d, %d) out of order", ch.Row, ch.Col)
			} else {
				last = i
			}
			if ch.Null && ch.Value != nil {
				t.Fatalf("(%d, %d): NULL with bytes", ch.Row, ch.Col)
			}
		}
		if enc := AppendChanges(nil, &c); !bytes.HasPrefix(data, enc) {
			t.Fatalf("re-encoding %x gave %x", data, enc)
		}
	})
}

// BenchmarkBatch512x3 encodes and decodes a batch of 512 rows of three
// columns, the host's largest batch by row count.
func BenchmarkBatch512x3(b *testing.B) {
	var batch Batch
	batch.Session = sampleSession()
	batch.Reset(Rows, []Column{{Name: "id", Type: 23}, {Name: "name", Type: 25}, {Name: "email", Type: 1043}})
	for i := range 512 {
		batch.Append(fmt.Appendf(nil, "%d", 100000+i), false)
		batch.Append(fmt.Appendf(nil, "Employee number %d", i), false)
		batch.Append(fmt.Appendf(nil, "employee.%d@example.com", i), false)
	}
	var buf []byte
	var got Batch
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], &batch)
		if err := DecodeBatch(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/row")
}

// BenchmarkChanges512 encodes and decodes 512 changed values of 24 bytes.
func BenchmarkChanges512(b *testing.B) {
	var c, got Changes
	for row := range 512 {
		c.Set(row, 1, []byte("employee EMP-****** here, in a note of some length"))
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendChanges(buf[:0], &c)
		if err := DecodeChanges(buf, &got, 512, 3); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
