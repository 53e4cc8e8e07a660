package detect

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"
)

// Style says how a finding is masked.
type Style uint8

// The mask styles.
const (
	// Full replaces a finding with "[REDACTED:<kind>]".
	Full Style = iota + 1
	// Partial keeps the last four letters or digits of a finding and
	// replaces the others with '*', keeping separators:
	// "4111-1111-1111-1111" becomes "****-****-****-1111". A finding with
	// fewer than eight letters and digits keeps only half of them. An email
	// keeps the first character of its local part and its domain:
	// "a****@example.com". JWTs and PEM keys are masked as with Full: no
	// part of a secret is shown.
	Partial
	// Hash replaces a finding with "<kind>:" and the first 16 hex digits of
	// its HMAC-SHA256 under the Masker's key: the same value always masks
	// the same way, so masked columns can still be joined.
	Hash

	lastStyle = Hash
)

var styleNames = [...]string{Full: "full", Partial: "partial", Hash: "hash"}

// String returns the style's name: "full", "partial" or "hash".
func (s Style) String() string {
	if s < Full || s > lastStyle {
		return "unknown"
	}
	return styleNames[s]
}

// ParseStyle returns the style named s ("full", "partial", "hash"), ignoring
// case.
func ParseStyle(s string) (Style, bool) {
	for st := Full; st <= lastStyle; st++ {
		if strings.EqualFold(s, styleNames[st]) {
			return st, true
		}
	}
	return 0, false
}

var markers = [...]string{
	0:      "[REDACTED:unknown]",
	Email:  "[REDACTED:email]",
	Card:   "[REDACTED:card]",
	SSN:    "[REDACTED:ssn]",
	Phone:  "[REDACTED:phone]",
	IBAN:   "[REDACTED:iban]",
	IPv4:   "[REDACTED:ipv4]",
	AWSKey: "[REDACTED:aws_key]",
	JWT:    "[REDACTED:jwt]",
	PEMKey: "[REDACTED:pem_key]",
}

// Masker rewrites values: it finds the kinds of its set and masks them in
// its style. A Masker is read-only once built, so it is safe for concurrent
// use. The zero value is not usable: build one with NewMasker.
type Masker struct {
	set   Set
	style Style
	mac   *keyedMAC // for Hash
}

// NewMasker returns a Masker that masks the kinds in set in the given style.
// hashKey keys the Hash style (NewMasker does not keep the slice). A style
// that is not one of Full, Partial and Hash is taken as Full.
func NewMasker(set Set, style Style, hashKey []byte) *Masker {
	m := &Masker{set: set & All, style: style}
	switch style {
	case Hash:
		m.mac = newKeyedMAC(hashKey)
	case Full, Partial:
	default:
		m.style = Full
	}
	return m
}

// Mask returns text with every finding masked, appended to dst (which may be
// nil, and must not overlap text), and whether anything was found. When
// nothing was, it returns dst as it was and false, without copying text or
// allocating.
func (m *Masker) Mask(dst, text []byte) ([]byte, bool) {
	if m.set == 0 {
		return dst, false
	}
	s := scanner{text: text, set: m.set}
	f, ok := s.next()
	if !ok {
		return dst, false
	}
	dst = slices.Grow(dst, len(text)+len(markers[0]))
	last := 0
	for ; ok; f, ok = s.next() {
		dst = append(dst, text[last:f.Start]...)
		dst = m.appendMasked(dst, text[f.Start:f.End], f.Kind)
		last = f.End
	}
	return append(dst, text[last:]...), true
}

// MaskWhole appends text to dst masked as one finding of kind k, whatever it
// holds and whatever the Masker's set: it serves column rules (a column
// named "ssn" is masked whatever it contains). An empty text stays empty; a
// k that is not a kind masks as "unknown" (Partial then masks as Full).
func (m *Masker) MaskWhole(dst, text []byte, k Kind) []byte {
	if len(text) == 0 {
		return dst
	}
	return m.appendMasked(dst, text, k)
}

// appendMasked appends v, a finding of kind k, masked.
func (m *Masker) appendMasked(dst, v []byte, k Kind) []byte {
	if !k.valid() {
		k = 0
	}
	switch m.style {
	case Hash:
		const digits = "0123456789abcdef"
		sum := m.mac.sum(v)
		dst = append(dst, k.String()...)
		dst = append(dst, ':')
		for _, b := range sum[:8] {
			dst = append(dst, digits[b>>4], digits[b&15])
		}
		return dst
	case Partial:
		switch k {
		case Email:
			return appendPartialEmail(dst, v)
		case Card, SSN, Phone, IBAN, IPv4, AWSKey:
			return appendKeepLast(dst, v)
		}
	}
	return append(dst, markers[k]...)
}

// appendPartialEmail appends the email v with its local part masked but
// for its first character.
func appendPartialEmail(dst, v []byte) []byte {
	at := bytes.LastIndexByte(v, '@')
	if at < 0 {
		at = len(v)
	}
	_, size := utf8.DecodeRune(v[:at])
	dst = append(dst, v[:size]...)
	for range utf8.RuneCount(v[size:at]) {
		dst = append(dst, '*')
	}
	return append(dst, v[at:]...)
}

// appendKeepLast appends v with its letters and digits replaced by '*' but
// for the last four (the last half when there are fewer than eight). Bytes
// beyond ASCII count as letters, one per character.
func appendKeepLast(dst, v []byte) []byte {
	units := 0
	for k := 0; k < len(v); {
		c := v[k]
		if c < utf8.RuneSelf {
			if class[c]&cAlnum != 0 {
				units++
			}
			k++
			continue
		}
		_, size := utf8.DecodeRune(v[k:])
		units++
		k += size
	}
	keep := 4
	if units < 8 {
		keep = units / 2
	}
	hide := units - keep
	// The output is never longer than v: reserve once and write by index
	// (appending byte by byte costs several times more, in WebAssembly
	// above all).
	w := len(dst)
	dst = slices.Grow(dst, len(v))[:w+len(v)]
	for k := 0; k < len(v); {
		c := v[k]
		if c < utf8.RuneSelf {
			if hide > 0 && class[c]&cAlnum != 0 {
				c = '*'
				hide--
			}
			dst[w] = c
			w++
			k++
			continue
		}
		_, size := utf8.DecodeRune(v[k:])
		if hide > 0 {
			dst[w] = '*'
			w++
			hide--
		} else {
			w += copy(dst[w:], v[k:k+size])
		}
		k += size
	}
	dst = dst[:w]
	return dst
}
