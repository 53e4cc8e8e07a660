package detect

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// FuzzMask checks that Find and Mask never panic, that Find's matches are
// ordered, disjoint and of the asked kinds, that Mask writes what Find found
// with the right lengths, and that a value masked with Full holds nothing
// Find would report again. Seeds are in testdata/fuzz/FuzzMask.
func FuzzMask(f *testing.F) {
	f.Fuzz(func(t *testing.T, text []byte, set uint16, style uint8) {
		s := Set(set) & All
		ms := Find(nil, text, s)
		last := 0
		for _, m := range ms {
			if m.Start < last || m.End <= m.Start || m.End > len(text) || !s.Has(m.Kind) {
				t.Fatalf("Find(%q, %b): bad match %+v in %+v", text, s, m, ms)
			}
			last = m.End
		}

		st := Style(style%3 + 1)
		masker := NewMasker(s, st, []byte("fuzz"))
		out, changed := masker.Mask(nil, text)
		if changed != (len(ms) > 0) || !changed && out != nil {
			t.Fatalf("Mask(%q) = %q, %v with matches %+v", text, out, changed, ms)
		}
		// Lengths: Full and Hash write masks of a fixed size; Partial keeps
		// the length of numbers and AWS keys, may shrink an email's local
		// part (one '*' per character), and masks secrets as Full does.
		lo, hi := len(text), len(text)
		for _, m := range ms {
			n := m.End - m.Start
			switch {
			case st == Hash:
				lo += len(m.Kind.String()) + 17 - n
				hi += len(m.Kind.String()) + 17 - n
			case st == Full || m.Kind == JWT || m.Kind == PEMKey:
				lo += len(markers[m.Kind]) - n
				hi += len(markers[m.Kind]) - n
			case m.Kind == Email:
				lo -= n
			}
		}
		if changed && (len(out) < lo || len(out) > hi) {
			t.Fatalf("Mask(%q) = %q: length %d, want %d..%d", text, out, len(out), lo, hi)
		}

		if st == Full && changed {
			var want []byte
			last := 0
			for _, m := range ms {
				want = append(want, text[last:m.Start]...)
				want = append(want, markers[m.Kind]...)
				last = m.End
			}
			want = append(want, text[last:]...)
			if !bytes.Equal(out, want) {
				t.Fatalf("Mask(%q) = %q, want %q", text, out, want)
			}
			if again := Find(nil, out, s); len(again) > 0 {
				t.Fatalf("Mask(%q) = %q, which still holds %q", text, out, found(string(out), again))
			}
		}

		_ = masker.MaskWhole(nil, text, Kind(style%12))
	})
}

// TestMaskLeavesNothing is FuzzMask's last property over texts glued
// together from findings and the bytes around them, which random fuzzing
// rarely builds.
func TestMaskLeavesNothing(t *testing.T) {
	pieces := []string{
		"alice@example.com", "b@x.io", "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111",
		"123-45-6789", "555-123-4567", "(555) 123-4567", "+1 555 123 4567", "+44 (0)20 7946 0958",
		"GB82WEST12345698765432", "GB82 WEST 1234 5698 7654 32", "10.0.0.1", "AKIAIOSFODNN7EXAMPLE",
		sampleJWT, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.", "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----",
		"1", "12", "123", "4111", "1111", "0", " ", " ", "-", "-", ".", ".", "@", "x", "A", "GB", "eyJ", "ey",
		`\n`, `\u003c`, `\`, "(", ")", "+", "_", "é", ",", `"`, "com", ".com", "-----", "\n",
		"1-", "+1", "(0)", "GB82", "AKIA", "eyJa.", "bob", "@example.com", "a.", "1111 1111", "22", "5",
		"-----BEGIN RSA PRIVATE KEY-----", "9", "255.", ":", "ASIA", "Y34FZKBOKMUTVV7A", "1.", "-1", "%",
		"+44", "20 7946 0958", "DE89", "3704 0044 0532 0130 00", `\\n`, "1 ", "800", "0199", "666", "45",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var text []byte
	for range 200000 {
		text = text[:0]
		for range 1 + rng.IntN(6) {
			text = append(text, pieces[rng.IntN(len(pieces))]...)
		}
		set := All
		if rng.IntN(2) == 0 {
			set = Set(rng.Uint32()) & All
		}
		out, _ := NewMasker(set, Full, nil).Mask(nil, text)
		if again := Find(nil, out, set); len(again) > 0 {
			t.Fatalf("Mask(%q) = %q, which still holds %q", text, out, found(string(out), again))
		}
	}
}
