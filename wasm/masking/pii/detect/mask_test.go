package detect

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

var testKey = []byte("test key")

// hashOf is what the Hash style should write for v.
func hashOf(key []byte, k Kind, v string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(v))
	return k.String() + ":" + hex.EncodeToString(h.Sum(nil))[:16]
}

func TestMaskStyles(t *testing.T) {
	tests := []struct {
		kind    Kind
		text    string // the finding, masked inside "<" and ">"
		partial string
	}{
		{Email, "alice@example.com", "a****@example.com"},
		{Email, "josé@example.com", "j***@example.com"},
		{Email, "éa@example.com", "é*@example.com"},
		{Card, "4111-1111-1111-1111", "****-****-****-1111"},
		{Card, "4111 1111 1111 1111", "**** **** **** 1111"},
		{Card, "378282246310005", "***********0005"},
		{SSN, "123-45-6789", "***-**-6789"},
		{Phone, "+1 555 123 4567", "+* *** *** 4567"},
		{Phone, "(555) 123-4567", "(***) ***-4567"},
		{Phone, "555.123.4567", "***.***.4567"},
		{IBAN, "GB82WEST12345698765432", "******************5432"},
		{IBAN, "GB82 WEST 1234 5698 7654 32", "**** **** **** **** **54 32"},
		{IPv4, "192.168.1.23", "***.**8.1.23"},
		{IPv4, "10.0.0.1", "**.*.0.1"},
		{AWSKey, "AKIAIOSFODNN7EXAMPLE", "****************MPLE"},
		{JWT, sampleJWT, "[REDACTED:jwt]"},
		{PEMKey, samplePEM, "[REDACTED:pem_key]"},
	}
	for _, tt := range tests {
		in := "<" + tt.text + ">"
		for _, style := range []Style{Full, Partial, Hash} {
			t.Run(tt.kind.String()+"/"+style.String()+"/"+tt.text[:min(len(tt.text), 12)], func(t *testing.T) {
				var want string
				switch style {
				case Full:
					want = "[REDACTED:" + tt.kind.String() + "]"
				case Partial:
					want = tt.partial
				case Hash:
					want = hashOf(testKey, tt.kind, tt.text)
				}
				m := NewMasker(SetOf(tt.kind), style, testKey)
				got, changed := m.Mask([]byte("prefix:"), []byte(in))
				if !changed || string(got) != "prefix:<"+want+">" {
					t.Errorf("Mask(%q) = %q, %v; want %q", in, got, changed, "prefix:<"+want+">")
				}
				if got := m.MaskWhole(nil, []byte(tt.text), tt.kind); string(got) != want {
					t.Errorf("MaskWhole(%q) = %q, want %q", tt.text, got, want)
				}
			})
		}
	}
}

func TestMaskText(t *testing.T) {
	tests := []struct {
		name  string
		style Style
		text  string
		want  string
	}{
		{"composite", Full, `(1,alice@example.com,"4111 1111 1111 1111")`, `(1,[REDACTED:email],"[REDACTED:card]")`},
		{"composite partial", Partial, `(1,alice@example.com,"4111 1111 1111 1111")`, `(1,a****@example.com,"**** **** **** 1111")`},
		{"JSON", Full, `{"email":"bob@example.org","ip":"10.0.0.1"}`, `{"email":"[REDACTED:email]","ip":"[REDACTED:ipv4]"}`},
		{"JSON escape kept", Full, `"Bob \u003cbob@example.com\u003e"`, `"Bob \u003c[REDACTED:email]\u003e"`},
		{"error message", Partial, `duplicate key value violates unique constraint "users_email_key": Key (email)=(bob@example.com) already exists.`,
			`duplicate key value violates unique constraint "users_email_key": Key (email)=(b**@example.com) already exists.`},
		{"pem to the end", Full, "key=-----BEGIN PRIVATE KEY-----\nMIIE", "key=[REDACTED:pem_key]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := NewMasker(All, tt.style, testKey).Mask(nil, []byte(tt.text))
			if !changed || string(got) != tt.want {
				t.Errorf("Mask(%q) = %q, %v; want %q", tt.text, got, changed, tt.want)
			}
		})
	}
}

func TestMaskUnchanged(t *testing.T) {
	texts := []string{"", "John Smith, 42 Main Street, Springfield", "2024-01-15 12:30:45", "v1.2.3.4.5", "user@localhost"}
	for _, style := range []Style{Full, Partial, Hash} {
		m := NewMasker(All, style, testKey)
		for _, text := range texts {
			t.Run(style.String()+"/"+text, func(t *testing.T) {
				b := []byte(text)
				dst := []byte("keep")
				got, changed := m.Mask(dst, b)
				if changed || string(got) != "keep" || &got[0] != &dst[0] {
					t.Errorf("Mask(%q) = %q, %v; want dst unchanged", text, got, changed)
				}
				if n := testing.AllocsPerRun(100, func() { m.Mask(nil, b) }); n != 0 {
					t.Errorf("Mask(%q) allocates %v times", text, n)
				}
			})
		}
	}
	// An empty set finds nothing.
	if got, changed := NewMasker(0, Full, nil).Mask(nil, []byte("bob@example.com")); changed || got != nil {
		t.Errorf("empty set: Mask = %q, %v", got, changed)
	}
}

func TestMaskAllocs(t *testing.T) {
	// With room in dst, masking allocates nothing either, hashes included
	// (once the pool holds a mac).
	text := []byte(`{"email":"bob@example.org","phone":"+1 555 123 4567","card":"4111 1111 1111 1111"}`)
	for _, style := range []Style{Full, Partial, Hash} {
		m := NewMasker(All, style, testKey)
		dst := make([]byte, 0, 512)
		if n := testing.AllocsPerRun(100, func() { dst, _ = m.Mask(dst[:0], text) }); n != 0 {
			t.Errorf("%v: Mask allocates %v times", style, n)
		}
	}
}

func TestMaskHash(t *testing.T) {
	text := []byte("mail bob@example.com or bob@example.com, not alice@example.com")
	a, _ := NewMasker(All, Hash, []byte("key a")).Mask(nil, text)
	a2, _ := NewMasker(All, Hash, []byte("key a")).Mask(nil, text)
	b, _ := NewMasker(All, Hash, []byte("key b")).Mask(nil, text)
	if !bytes.Equal(a, a2) {
		t.Errorf("same key, different masks: %q, %q", a, a2)
	}
	if bytes.Equal(a, b) {
		t.Errorf("different keys, same mask: %q", a)
	}
	f := strings.Fields(string(a))
	if len(f) != 6 || f[1] != strings.TrimSuffix(f[3], ",") || f[1] == f[5] {
		t.Errorf("equal values should hash equal, others not: %q", a)
	}
	if want := hashOf([]byte("key a"), Email, "bob@example.com"); f[1] != want {
		t.Errorf("hash %q, want %q", f[1], want)
	}
	// The key is copied.
	key := []byte("key a")
	m := NewMasker(All, Hash, key)
	key[0] = 'X'
	if c, _ := m.Mask(nil, text); !bytes.Equal(c, a) {
		t.Errorf("changing the caller's key changed the mask: %q", c)
	}
}

func TestMaskWhole(t *testing.T) {
	tests := []struct {
		style Style
		kind  Kind
		text  string
		want  string
	}{
		{Full, SSN, "123456789", "[REDACTED:ssn]"},
		{Partial, SSN, "123456789", "*****6789"},
		{Partial, Card, "4111-1111-1111-1234", "****-****-****-1234"},
		{Partial, Phone, "12", "*2"},
		{Partial, Phone, "x", "*"},
		{Partial, Email, "not an email", "n***********"},
		{Partial, Email, "a@b@example.com", "a**@example.com"},
		{Partial, IBAN, "Ünïcödé 12", "*****dé 12"},
		{Partial, JWT, "abc", "[REDACTED:jwt]"},
		{Hash, SSN, "123456789", hashOf(testKey, SSN, "123456789")},
		{Full, SSN, "", ""},
		{Full, 0, "x", "[REDACTED:unknown]"},
		{Partial, 99, "secret", "[REDACTED:unknown]"},
		{Hash, 99, "secret", hashOf(testKey, 0, "secret")},
	}
	for _, tt := range tests {
		t.Run(tt.style.String()+"/"+tt.kind.String()+"/"+tt.text, func(t *testing.T) {
			got := NewMasker(All, tt.style, testKey).MaskWhole([]byte("p:"), []byte(tt.text), tt.kind)
			if string(got) != "p:"+tt.want {
				t.Errorf("MaskWhole(%q) = %q, want %q", tt.text, got, "p:"+tt.want)
			}
		})
	}
}

func TestStyleNames(t *testing.T) {
	for _, st := range []Style{Full, Partial, Hash} {
		if got, ok := ParseStyle(st.String()); !ok || got != st {
			t.Errorf("ParseStyle(%q) = %v, %v", st.String(), got, ok)
		}
	}
	if got, ok := ParseStyle("HASH"); !ok || got != Hash {
		t.Errorf("ParseStyle(HASH) = %v, %v", got, ok)
	}
	for _, s := range []string{"", "unknown", "redact"} {
		if _, ok := ParseStyle(s); ok {
			t.Errorf("ParseStyle(%q) succeeds", s)
		}
	}
	// An invalid style masks as Full.
	if got, _ := NewMasker(All, 0, nil).Mask(nil, []byte("bob@example.com")); string(got) != "[REDACTED:email]" {
		t.Errorf("style 0: %q", got)
	}
}

func TestKeyedMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		key := make([]byte, rng.IntN(200))
		msg := make([]byte, i%300)
		for _, b := range [][]byte{key, msg} {
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		}
		want := hmac.New(sha256.New, key)
		want.Write(msg)
		if got := newKeyedMAC(key).sum(msg); !bytes.Equal(got[:], want.Sum(nil)) {
			t.Fatalf("HMAC-SHA256(key %x, msg %x) = %x, want %x", key, msg, got, want.Sum(nil))
		}
	}
}

func TestMaskerConcurrent(t *testing.T) {
	m := NewMasker(All, Hash, testKey)
	text := []byte(`{"email":"bob@example.org","card":"4111 1111 1111 1111"}`)
	want, _ := m.Mask(nil, text)
	done := make(chan []byte)
	for range 4 {
		go func() {
			var out []byte
			for range 200 {
				out, _ = m.Mask(out[:0], text)
			}
			done <- out
		}()
	}
	for range 4 {
		if got := <-done; !bytes.Equal(got, want) {
			t.Errorf("concurrent Mask = %q, want %q", got, want)
		}
	}
}
