package detect

import (
	"strings"
	"testing"
)

const (
	benchPlain = "John Smith, 42 Main Street, Springfield" // 40 bytes
	benchMixed = `{"id":1042,"name":"Alice Example","email":"alice@example.com",` +
		`"phone":"+1 555 123 4567","card":"4111 1111 1111 1111","note":` +
		`"ordered 3 items on 2024-01-15 at 12:30, shipped to 42 Main Street, Springfield"}`
)

func BenchmarkFindNoMatch(b *testing.B) {
	text := []byte(benchPlain)
	dst := make([]Match, 0, 4)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		dst = Find(dst[:0], text, All)
	}
	if len(dst) != 0 {
		b.Fatal(dst)
	}
}

func BenchmarkMaskNoMatch(b *testing.B) {
	text := []byte(benchPlain)
	m := NewMasker(All, Full, nil)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, changed := m.Mask(nil, text); changed {
			b.Fatal("changed")
		}
	}
}

func BenchmarkMaskEmail(b *testing.B) {
	text := []byte("alice.example+orders@mail.example.com")
	for _, style := range []Style{Full, Partial, Hash} {
		b.Run(style.String(), func(b *testing.B) {
			m := NewMasker(All, style, []byte("key"))
			dst := make([]byte, 0, 256)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = m.Mask(dst[:0], text)
			}
		})
	}
}

func BenchmarkMaskMixed(b *testing.B) {
	text := []byte(benchMixed)
	for _, style := range []Style{Full, Partial, Hash} {
		b.Run(style.String(), func(b *testing.B) {
			m := NewMasker(All, style, []byte("key"))
			dst := make([]byte, 0, 512)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				dst, _ = m.Mask(dst[:0], text)
				n++
			}
			if got := len(Find(nil, text, All)); got != 3 {
				b.Fatalf("%d findings, want 3", got)
			}
		})
	}
}

func BenchmarkFindNoMatchProse(b *testing.B) {
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 10))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if len(Find(nil, text, All)) != 0 {
			b.Fatal("found")
		}
	}
}
