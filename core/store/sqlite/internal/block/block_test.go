package block

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

func sample() []store.Event {
	t0 := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	return []store.Event{
		{Seq: 1, Time: t0, Kind: "session.start", SessionID: "s1", Identity: "alice", Connection: "db",
			Data: []byte(`{"a":1}`), PrevHash: "", Hash: "h1"},
		{Seq: 2, Time: t0.Add(time.Millisecond), Kind: "request", SessionID: "s1", Identity: "alice", Connection: "db",
			Data: []byte{0, 0xff, '\n'}, PrevHash: "h1", Hash: "h2"},
		{Seq: 3, Time: time.Unix(0, -1).UTC(), Kind: "", SessionID: "", Identity: "", Connection: "",
			Data: []byte{}, PrevHash: "h2", Hash: strings.Repeat("f", 300)},
		{Seq: math.MaxInt64, Time: time.Unix(0, math.MaxInt64).UTC(), Kind: "request", SessionID: "s2",
			Data: bytes.Repeat([]byte("x"), 1000), PrevHash: "h3", Hash: "h4"},
		{Seq: math.MinInt64, Time: time.Unix(0, math.MinInt64).UTC(), Data: []byte{}},
	}
}

// chain returns n events as the audit writer makes them: consecutive, with
// hex hashes linked by prev_hash, in interleaved sessions.
func chain(n int) []store.Event {
	t0 := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	evs := make([]store.Event, n)
	prev := ""
	for i := range evs {
		h := sha256.Sum256([]byte(prev))
		evs[i] = store.Event{Seq: int64(1000 + i), Time: t0.Add(time.Duration(i) * 37 * time.Microsecond),
			Kind: "request", SessionID: fmt.Sprintf("session-%d", i%7), Identity: fmt.Sprintf("user%d", i%7),
			Connection: "db", Data: fmt.Appendf(nil, `{"n":%d}`, i), PrevHash: prev, Hash: hex.EncodeToString(h[:])}
		prev = evs[i].Hash
	}
	return evs
}

func TestRoundTrip(t *testing.T) {
	for name, evs := range map[string][]store.Event{"sample": sample(), "chain": chain(300), "one": chain(1)} {
		t.Run(name, func(t *testing.T) {
			size := HeaderSize
			for i := range evs {
				size += MaxSize(&evs[i])
			}
			b := Append(nil, evs)
			if len(b) > size {
				t.Errorf("encoded %d bytes, MaxSize says at most %d", len(b), size)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, evs) {
				t.Errorf("Decode = %+v, want %+v", got, evs)
			}
			if again := Append(nil, got); !bytes.Equal(again, b) {
				t.Errorf("re-encoding differs")
			}
			// Every proper prefix and a trailing byte are refused.
			for n := range len(b) {
				if _, err := Decode(b[:n]); err == nil {
					t.Errorf("Decode of the first %d of %d bytes succeeded", n, len(b))
				}
			}
			if _, err := Decode(append(b[:len(b):len(b)], 0)); err == nil {
				t.Errorf("Decode with a trailing byte succeeded")
			}
		})
	}
}

// TestCompact checks that an event of a chain costs little more than its
// data: strings once per block, hashes as bytes, prev_hash by reference.
func TestCompact(t *testing.T) {
	evs := chain(300)
	data := 0
	for _, ev := range evs {
		data += len(ev.Data)
	}
	b := Append(nil, evs)
	if per := (len(b) - data) / len(evs); per > 48 {
		t.Errorf("%d bytes per event besides the data, want at most 48", per)
	}
}

func TestReaderFilters(t *testing.T) {
	evs := chain(50)
	r, err := NewReader(Append(nil, evs))
	if err != nil {
		t.Fatal(err)
	}
	if r.Index("session-3") < 0 || r.Index("nope") != -1 {
		t.Errorf("Index: session-3 at %d, nope at %d", r.Index("session-3"), r.Index("nope"))
	}
	// Converting only some events still resolves prev_hash references.
	want := r.Index("session-3")
	var e Raw
	n := 0
	for r.Next(&e) {
		if e.SessionID != want {
			continue
		}
		ev := r.Event(&e)
		if !reflect.DeepEqual(ev, evs[ev.Seq-1000]) {
			t.Errorf("event %d = %+v, want %+v", ev.Seq, ev, evs[ev.Seq-1000])
		}
		n++
	}
	if r.Err() != nil || n != 7 {
		t.Errorf("read %d events of session-3, error %v", n, r.Err())
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty block"},
		{"version", []byte{2, 1, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2}, "version"},
		{"no events", []byte{1, 0, 0}, "without events"},
		{"count too large", []byte{1, 2, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2}, "cannot hold"},
		{"count overflow", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "event count"},
		{"string count", []byte{1, 1, 5, 0, 0}, "string count"},
		{"string length", []byte{1, 1, 1, 9, 0}, "string length"},
		{"string index", []byte{1, 1, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2}, "string index"},
		{"first refers to previous", []byte{1, 1, 1, 0, 2, 2, 0, 0, 0, 0, 0, 0, 2}, "previous hash"},
		{"data past the end", []byte{1, 1, 1, 0, 2, 2, 0, 0, 0, 0, 9, 2, 2}, "data length"},
		{"hash past the end", []byte{1, 1, 1, 0, 2, 2, 0, 0, 0, 0, 0, 1, 2}, "hash length"},
		{"hash length overflow", []byte{1, 1, 1, 0, 2, 2, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "hash length"},
		{"trailing bytes", []byte{1, 1, 1, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2, 7}, "after the last event"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Decode(%x) error = %v, want %q", c.b, err, c.want)
			}
		})
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// encodes to a block that decodes to the same events.
func FuzzDecode(f *testing.F) {
	f.Add(Append(nil, sample()))
	f.Add(Append(nil, chain(20)))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := Decode(b)
		if err != nil {
			return
		}
		if len(evs) == 0 {
			t.Fatalf("Decode(%x) accepted a block without events", b)
		}
		again, err := Decode(Append(nil, evs))
		if err != nil {
			t.Fatalf("Decode(Append(Decode(%x))): %v", b, err)
		}
		if !reflect.DeepEqual(again, evs) {
			t.Fatalf("Decode(%x) = %+v, re-encoded and decoded %+v", b, evs, again)
		}
	})
}
