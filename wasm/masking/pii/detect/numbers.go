package detect

// atDigit returns the longest of the number kinds in kinds found at the
// digit text[i], or an IBAN whose check digits start there.
func (s *scanner) atDigit(i int, kinds Set) Match {
	text := s.text
	if kinds.Has(IBAN) && i >= 2 && class[text[i-1]]&cUpper != 0 {
		if m, ok := s.iban(i); ok {
			return m
		}
	}
	if !s.leftOK(i, true) {
		return Match{}
	}
	// The length of the leading digit run tells which kinds may start here.
	r := digitRun(text, i, 20)
	best := Match{Start: i, End: i}
	try := func(k Kind, end int, ok bool) {
		if ok && end > best.End {
			best.End, best.Kind = end, k
		}
	}
	if kinds.Has(Card) && (r == 4 || r >= 13) {
		e, ok := cardEnd(text, i, r)
		try(Card, e, ok)
	}
	if r <= 3 {
		if kinds.Has(SSN) && r == 3 {
			e, ok := ssnEnd(text, i)
			try(SSN, e, ok)
		}
		if kinds.Has(Phone) && (r == 3 || r == 1) {
			e, ok := nanpEnd(text, i)
			try(Phone, e, ok)
		}
		if kinds.Has(IPv4) {
			e, ok := ipv4End(text, i)
			try(IPv4, e, ok)
		}
	}
	if best.Kind == 0 {
		return Match{}
	}
	return best
}

// cardEnd returns the end of a payment card number starting at text[i],
// where a run of r digits (counted up to 20) starts.
func cardEnd(text []byte, i, r int) (int, bool) {
	if text[i] < '2' || text[i] > '6' {
		return 0, false
	}
	if r >= 13 {
		e := i + r
		if r <= 19 && rightOK(text, e, true) && luhn(text[i:e]) {
			return e, true
		}
		return 0, false
	}
	if r != 4 || i+5 >= len(text) {
		return 0, false
	}
	sep := text[i+4]
	if sep != ' ' && sep != '-' {
		return 0, false
	}
	// Groups: the first of four digits, then groups of 3-6 (4-4-4-4,
	// 4-6-5, 4-4-4-4-3), up to 19 digits. The longest valid prefix wins.
	var ends, totals [6]int
	ends[0], totals[0] = i+4, 4
	g, total, j := 1, 4, i+4
	for g < len(ends) && j < len(text) && text[j] == sep {
		r := digitRun(text, j+1, 7)
		if r < 3 || r > 6 || total+r > 19 {
			break
		}
		total += r
		j += 1 + r
		ends[g], totals[g] = j, total
		g++
	}
	for g--; g > 0 && totals[g] >= 13; g-- {
		e := ends[g]
		if rightOK(text, e, true) && luhn(text[i:e]) {
			return e, true
		}
	}
	return 0, false
}

// luhn reports whether the digits in b (other bytes skipped) pass the Luhn
// check.
func luhn(b []byte) bool {
	sum, double := 0, false
	for k := len(b) - 1; k >= 0; k-- {
		c := b[k]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ssnEnd returns the end of an SSN ddd-dd-dddd starting at text[i].
func ssnEnd(text []byte, i int) (int, bool) {
	if digitRun(text, i, 4) != 3 || i+11 > len(text) || text[i+3] != '-' ||
		digitRun(text, i+4, 3) != 2 || text[i+6] != '-' || digitRun(text, i+7, 5) != 4 {
		return 0, false
	}
	area, group, serial := text[i:i+3], text[i+4:i+6], text[i+7:i+11]
	if string(area) == "000" || string(area) == "666" || area[0] == '9' ||
		string(group) == "00" || string(serial) == "0000" {
		return 0, false
	}
	return i + 11, rightOK(text, i+11, true)
}

// nanpEnd returns the end of a North American number xxx-xxx-xxxx or
// xxx.xxx.xxxx, optionally led by "1-" or "1.", starting at text[i].
func nanpEnd(text []byte, i int) (int, bool) {
	j := i
	if text[j] == '1' && j+1 < len(text) && (text[j+1] == '-' || text[j+1] == '.') {
		j += 2
	}
	if digitRun(text, j, 4) != 3 || text[j] < '2' || j+12 > len(text) {
		return 0, false
	}
	sep := text[j+3]
	if sep != '-' && sep != '.' || j > i && text[i+1] != sep ||
		digitRun(text, j+4, 4) != 3 || text[j+7] != sep || digitRun(text, j+8, 5) != 4 {
		return 0, false
	}
	return j + 12, rightOK(text, j+12, true)
}

// phoneParen returns the North American number (xxx) xxx-xxxx starting at
// the '(' text[i].
func (s *scanner) phoneParen(i int) Match {
	text := s.text
	if digitRun(text, i+1, 4) != 3 || text[i+1] < '2' || i+5 >= len(text) || text[i+4] != ')' || !s.leftOK(i, false) {
		return Match{}
	}
	j := i + 5
	if text[j] == ' ' {
		j++
	}
	if digitRun(text, j, 4) != 3 || j+8 > len(text) || text[j+3] != '-' && text[j+3] != '.' ||
		digitRun(text, j+4, 5) != 4 || !rightOK(text, j+8, true) {
		return Match{}
	}
	return Match{Start: i, End: j + 8, Kind: Phone}
}

// phonePlus returns the E.164 number starting at the '+' text[i]: 8 to 15
// digits in groups separated by a space, dash or dot, and parentheses.
func (s *scanner) phonePlus(i int) Match {
	text := s.text
	j := i + 1
	if j >= len(text) || text[j] < '1' || text[j] > '9' || !s.leftOK(i, false) {
		return Match{}
	}
	digits, open, best := 0, false, -1
	for {
		r := digitRun(text, j, 16)
		if digits+r > 15 {
			break
		}
		digits += r
		j += r
		if digits >= 8 && !open && rightOK(text, j, true) {
			best = j
		}
		// A separator: at most one of " -." and one parenthesis.
		k, o, plain, paren := j, open, false, false
	sep:
		for k < len(text) && k-j < 2 {
			switch c := text[k]; {
			case c == ' ' || c == '-' || c == '.':
				if plain {
					break sep
				}
				plain = true
			case c == '(' && !o && !paren:
				o, paren = true, true
			case c == ')' && o && !paren:
				o, paren = false, true
			default:
				break sep
			}
			k++
		}
		if k == j || k >= len(text) || !isDigit(text[k]) {
			break
		}
		j, open = k, o
	}
	if best < 0 {
		return Match{}
	}
	return Match{Start: i, End: best, Kind: Phone}
}

// ipv4End returns the end of a dotted-quad address starting at text[i].
func ipv4End(text []byte, i int) (int, bool) {
	j := i
	for o := range 4 {
		if o > 0 {
			if j >= len(text) || text[j] != '.' {
				return 0, false
			}
			j++
		}
		r := digitRun(text, j, 4)
		if r == 0 || r > 3 || r > 1 && text[j] == '0' {
			return 0, false
		}
		if r == 3 && (text[j] > '2' || text[j] == '2' && (text[j+1] > '5' || text[j+1] == '5' && text[j+2] > '5')) {
			return 0, false
		}
		j += r
	}
	return j, rightOK(text, j, true)
}

// iban returns the IBAN whose check digits start at text[i].
func (s *scanner) iban(i int) (Match, bool) {
	text := s.text
	st := i - 2
	if st < s.floor || i+1 >= len(text) || class[text[st]]&class[text[st+1]]&cUpper == 0 || !isDigit(text[i+1]) {
		return Match{}, false
	}
	want := ibanLength(text[st], text[st+1])
	if want == 0 || !s.leftOK(st, false) {
		return Match{}, false
	}
	upperOrDigit := func(c byte) bool { return class[c]&(cUpper|cDigit) != 0 }
	var end int
	if i+2 < len(text) && text[i+2] == ' ' {
		// Grouped in fours: "GB82 WEST 1234 5698 7654 32".
		count, j := 4, i+2
		for count < want {
			if j+1 >= len(text) || text[j] != ' ' {
				return Match{}, false
			}
			j++
			g := 0
			for g < 4 && count < want && j < len(text) && upperOrDigit(text[j]) {
				j++
				g++
				count++
			}
			if g < 4 && count < want {
				return Match{}, false
			}
		}
		end = j
	} else {
		end = st + want
		if end > len(text) {
			return Match{}, false
		}
		for j := i + 2; j < end; j++ {
			if !upperOrDigit(text[j]) {
				return Match{}, false
			}
		}
	}
	if !rightOK(text, end, isDigit(text[end-1])) || !ibanValid(text[st:end]) {
		return Match{}, false
	}
	return Match{Start: st, End: end, Kind: IBAN}, true
}

// ibanValid checks the mod-97 checksum of an IBAN (spaces skipped): the
// country code and check digits moved to the end, letters as 10-35.
func ibanValid(b []byte) bool {
	r := 0
	add := func(c byte) {
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return r == 1
}

// ibanLengths lists the IBAN registry's countries and their IBAN lengths.
const ibanLengths = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24" +
	"DE22DJ27DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28" +
	"HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25" +
	"MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18NO15OM23PK24PL28PS29PT25QA29" +
	"RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28TL23TN24TR26UA29" +
	"VA22VG24XK20YE30"

var ibanLenTable = func() (t [26 * 26]uint8) {
	for k := 0; k+4 <= len(ibanLengths); k += 4 {
		e := ibanLengths[k : k+4]
		t[int(e[0]-'A')*26+int(e[1]-'A')] = (e[2]-'0')*10 + e[3] - '0'
	}
	return t
}()

// ibanLength returns the IBAN length of the country a, b (upper case), or 0
// for a country without IBANs.
func ibanLength(a, b byte) int {
	return int(ibanLenTable[int(a-'A')*26+int(b-'A')])
}
