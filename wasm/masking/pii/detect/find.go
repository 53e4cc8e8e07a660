package detect

import "encoding/binary"

// Match is one finding in a value: the bytes [Start, End).
type Match struct {
	Start, End int
	Kind       Kind
}

// Find appends the non-overlapping matches of the kinds in set found in text
// to dst, in order, and returns it. When two candidates overlap, the earlier
// start wins; at the same start the longer one wins. Find does not allocate
// when dst has room for the matches.
func Find(dst []Match, text []byte, set Set) []Match {
	s := scanner{text: text, set: set & All}
	if s.set == 0 {
		return dst
	}
	for {
		m, ok := s.next()
		if !ok {
			return dst
		}
		dst = append(dst, m)
	}
}

// Byte classes.
const (
	cDigit uint8 = 1 << iota
	cUpper
	cAlnum // ASCII letters and digits
	cWord  // ASCII letters, digits and '_': what \w matches
	cLocal // bytes of an email's local part
	cLabel // bytes of a domain label
	cB64   // the base64url alphabet
	cHex
)

var class = func() (t [256]uint8) {
	for c := range 256 {
		var f uint8
		switch {
		case c >= '0' && c <= '9':
			f = cDigit | cAlnum | cWord | cLocal | cLabel | cB64 | cHex
		case c >= 'A' && c <= 'Z':
			f = cUpper | cAlnum | cWord | cLocal | cLabel | cB64
			if c <= 'F' {
				f |= cHex
			}
		case c >= 'a' && c <= 'z':
			f = cAlnum | cWord | cLocal | cLabel | cB64
			if c <= 'f' {
				f |= cHex
			}
		case c == '_':
			f = cWord | cLocal | cB64
		case c == '-':
			f = cLocal | cLabel | cB64
		case c == '.' || c == '%' || c == '+':
			f = cLocal
		case c >= 0x80:
			f = cLocal | cLabel
		}
		t[c] = f
	}
	return t
}()

// triggers maps a byte to the kinds whose scan starts there.
var triggers = func() (t [256]Set) {
	for c := '0'; c <= '9'; c++ {
		t[c] = SetOf(Card, SSN, Phone, IBAN, IPv4)
	}
	t['+'] = SetOf(Phone)
	t['('] = SetOf(Phone)
	t['@'] = SetOf(Email)
	t['A'] = SetOf(AWSKey) // AKIA, ASIA, ...
	t['J'] = SetOf(JWT)    // the J of "eyJ"
	t['-'] = SetOf(PEMKey) // "-----BEGIN "
	return t
}()

// mayTrigger reports whether one of the 8 bytes in x may be a trigger: all
// triggers are between '(' (0x28) and 'J' (0x4a). It is the "has a byte
// between m and n" bit trick; bytes from 0x80 never count.
func mayTrigger(x uint64) bool {
	const ones = 0x0101010101010101
	const m, n = 0x27, 0x4b // exclusive bounds
	low := x & (ones * 127)
	return (ones*(127+n)-low)&^x&(low+ones*(127-m))&(ones*128) != 0
}

func isDigit(c byte) bool { return c-'0' < 10 }

// scanner finds the matches in a text one at a time.
type scanner struct {
	text []byte
	set  Set
	pos  int // the next byte to look at
	// floor is the end of the last match: the bytes before it are out of
	// sight, as if the text began at floor.
	floor int
	// [runFrom, runEnd) is a run of email local-part bytes, remembered by
	// coveringEmail so that many matches in one run cost one walk.
	runFrom, runEnd int
}

// next returns the next match.
func (s *scanner) next() (Match, bool) {
	text, set := s.text, s.set
	for i := s.pos; ; {
		for i < len(text) {
			if i+8 <= len(text) && !mayTrigger(binary.LittleEndian.Uint64(text[i:])) {
				i += 8
				continue
			}
			if triggers[text[i]]&set != 0 {
				break
			}
			i++
		}
		if i >= len(text) {
			break
		}
		c := text[i]
		kinds := triggers[c] & set
		var m Match
		switch c {
		case '@':
			m = s.email(i)
		case '+':
			m = s.phonePlus(i)
		case '(':
			m = s.phoneParen(i)
		case 'A':
			m = s.awsKey(i)
		case 'J':
			m = s.jwt(i)
		case '-':
			m = s.pem(i)
		default: // a digit
			m = s.atDigit(i, kinds)
			if m.Kind == 0 {
				// No candidate starts inside a word: skip the rest of it.
				i = skipWord(text, i+1)
				continue
			}
		}
		if m.Kind != 0 {
			return s.commit(m), true
		}
		i++
	}
	s.pos = len(text)
	return Match{}, false
}

// commit records m as found and returns it, or the email that covers it.
func (s *scanner) commit(m Match) Match {
	if m.Kind != Email && s.set.Has(Email) {
		if e, ok := s.coveringEmail(m); ok {
			m = e
		}
	}
	s.floor, s.pos = m.End, m.End
	return m
}

// coveringEmail returns the email that starts at or before m and so wins
// over it, as in "4111111111111111@example.com".
func (s *scanner) coveringEmail(m Match) (Match, bool) {
	text := s.text
	k := m.Start
	if k >= s.runFrom && k < s.runEnd {
		k = s.runEnd
	} else {
		for k < len(text) && class[text[k]]&cLocal != 0 {
			k++
		}
		s.runFrom, s.runEnd = m.Start, k
	}
	if k >= len(text) || text[k] != '@' {
		return Match{}, false
	}
	e := s.email(k)
	if e.Kind == 0 || e.Start > m.Start || e.Start == m.Start && e.End <= m.End {
		return Match{}, false
	}
	return e, true
}

func skipWord(text []byte, i int) int {
	for i < len(text) && class[text[i]]&cWord != 0 {
		i++
	}
	return i
}

// leftOK reports whether a match may start at i: the byte before it must
// not be a word byte (unless it ends a JSON escape), and a number must not
// follow a digit and a '-' or '.'.
func (s *scanner) leftOK(i int, digitStart bool) bool {
	if i == s.floor {
		return true
	}
	p := s.text[i-1]
	if class[p]&cWord != 0 {
		return s.escapeBefore(i)
	}
	if digitStart && (p == '-' || p == '.') && i-2 >= s.floor && isDigit(s.text[i-2]) {
		return false
	}
	return true
}

// rightOK reports whether a match may end at e: the byte after it must not
// be a word byte, and, when the match ends with a digit, it must not be a
// '-' or '.' followed by a digit. The rule mirrors leftOK so that a number
// rejected for what follows it is never masked in part.
func rightOK(text []byte, e int, lastDigit bool) bool {
	if e >= len(text) {
		return true
	}
	c := text[e]
	if class[c]&cWord != 0 {
		return false
	}
	if lastDigit && (c == '-' || c == '.') && e+1 < len(text) && isDigit(text[e+1]) {
		return false
	}
	return true
}

// escapeBefore reports whether the bytes before i end with a JSON escape
// made of word bytes: \b, \f, \n, \r, \t or \uXXXX.
func (s *scanner) escapeBefore(i int) bool {
	t, f := s.text, s.floor
	if i-2 >= f && t[i-2] == '\\' {
		switch t[i-1] {
		case 'b', 'f', 'n', 'r', 't':
			return oddBackslashes(t, f, i-2)
		}
	}
	if i-6 >= f && t[i-6] == '\\' && t[i-5] == 'u' && isHex4(t[i-4:i]) {
		return oddBackslashes(t, f, i-6)
	}
	return false
}

// oddBackslashes reports whether the backslash at t[k] starts an escape: it
// ends a run of an odd number of backslashes (at or after f).
func oddBackslashes(t []byte, f, k int) bool {
	n := 0
	for k >= f && t[k] == '\\' {
		n++
		k--
	}
	return n%2 == 1
}

func isHex4(b []byte) bool {
	return len(b) >= 4 && class[b[0]]&class[b[1]]&class[b[2]]&class[b[3]]&cHex != 0
}

// digitRun returns the number of digits at text[i:], counting up to max.
func digitRun(text []byte, i, max int) int {
	n := 0
	for i+n < len(text) && n < max && isDigit(text[i+n]) {
		n++
	}
	return n
}

func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}
