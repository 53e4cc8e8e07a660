package detect

// email returns the email address around the '@' text[at].
func (s *scanner) email(at int) Match {
	text, floor := s.text, s.floor
	// The local part: up to 64 bytes of [A-Za-z0-9._%+-] (and non-ASCII)
	// before the '@'.
	j := at
	for j > floor && class[text[j-1]]&cLocal != 0 {
		j--
		if at-j > 64 {
			return Match{}
		}
	}
	// A JSON escape before the address is not part of it: "\u003cbob@...".
	if j > floor && text[j-1] == '\\' && oddBackslashes(text, floor, j-1) {
		switch c := text[j]; {
		case c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't':
			j++
		case c == 'u' && j+5 <= at && isHex4(text[j+1:]):
			j += 5
		}
	}
	for j < at && (text[j] == '.' || text[j] == '-' || text[j] == '+') {
		j++
	}
	if j == at {
		return Match{}
	}
	end := s.domainEnd(at + 1)
	if end < 0 {
		return Match{}
	}
	return Match{Start: j, End: end, Kind: Email}
}

// domainEnd returns the end of the domain starting at text[i]: labels
// separated by dots, ending with the last label that can be a top-level
// domain (two or more ASCII letters), or -1.
func (s *scanner) domainEnd(i int) int {
	text := s.text
	last, labels := -1, 0
	for {
		k := i
		for k < len(text) && class[text[k]]&cLabel != 0 {
			if text[k] == '-' && s.isPEMStart(k) {
				break
			}
			k++
		}
		if k == i || text[i] == '-' {
			return last
		}
		labels++
		if labels > 1 && isTLD(text[i:k]) {
			last = k
		}
		if k+1 >= len(text) || text[k] != '.' || class[text[k+1]]&cLabel == 0 {
			return last
		}
		i = k + 1
	}
}

func isTLD(b []byte) bool {
	if len(b) < 2 || len(b) > 63 {
		return false
	}
	for _, c := range b {
		if class[c]&(cAlnum|cDigit) != cAlnum {
			return false
		}
	}
	return true
}
