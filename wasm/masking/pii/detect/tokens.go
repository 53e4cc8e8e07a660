package detect

import "bytes"

// awsKey returns the AWS access key id starting at the 'A' text[i].
func (s *scanner) awsKey(i int) Match {
	text := s.text
	if i+20 > len(text) || !s.leftOK(i, false) {
		return Match{}
	}
	switch string(text[i : i+4]) {
	case "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA":
	default:
		return Match{}
	}
	for _, c := range text[i+4 : i+20] {
		if class[c]&(cUpper|cDigit) == 0 {
			return Match{}
		}
	}
	if !rightOK(text, i+20, false) {
		return Match{}
	}
	return Match{Start: i, End: i + 20, Kind: AWSKey}
}

// jwt returns the JSON web token whose "eyJ" ends at the 'J' text[i].
func (s *scanner) jwt(i int) Match {
	text, st := s.text, i-2
	if st < s.floor || text[st] != 'e' || text[st+1] != 'y' {
		return Match{}
	}
	if st > s.floor {
		if p := text[st-1]; p == '-' || class[p]&cWord != 0 && !s.escapeBefore(st) {
			return Match{}
		}
	}
	e1 := s.b64Run(st)
	if e1-st < 4 || e1 >= len(text) || text[e1] != '.' || !hasPrefix(text[e1+1:], "eyJ") {
		return Match{}
	}
	e2 := s.b64Run(e1 + 1)
	if e2-e1 < 5 || e2 >= len(text) || text[e2] != '.' {
		return Match{}
	}
	e3 := s.b64Run(e2 + 1)
	if e3 == e2+1 {
		return Match{}
	}
	return Match{Start: st, End: e3, Kind: JWT}
}

// b64Run returns the end of the run of base64url bytes at text[i]. When
// PEM keys are looked for, it stops where one starts, as the mask of that
// key would stop it.
func (s *scanner) b64Run(i int) int {
	text := s.text
	for i < len(text) && class[text[i]]&cB64 != 0 {
		if text[i] == '-' && s.isPEMStart(i) {
			break
		}
		i++
	}
	return i
}

var pemEnd = []byte("-----END ")

// pem returns the PEM private key block starting at the '-' text[i].
func (s *scanner) pem(i int) Match {
	text := s.text
	label, k := pemHeader(text, i)
	if k < 0 {
		return Match{}
	}
	for {
		idx := bytes.Index(text[k:], pemEnd)
		if idx < 0 {
			return Match{Start: i, End: len(text), Kind: PEMKey}
		}
		p := k + idx + len(pemEnd)
		if bytes.HasPrefix(text[p:], label) && hasPrefix(text[p+len(label):], "-----") {
			return Match{Start: i, End: p + len(label) + 5, Kind: PEMKey}
		}
		k = p
	}
}

// pemHeader parses a "-----BEGIN <label>-----" line of a private key at
// text[i:] and returns the label and the end of the line, or -1.
func pemHeader(text []byte, i int) ([]byte, int) {
	const begin = "-----BEGIN "
	if !hasPrefix(text[i:], begin) {
		return nil, -1
	}
	ls := i + len(begin)
	le := ls
	for le < len(text) && le-ls <= 40 && (class[text[le]]&(cUpper|cDigit) != 0 || text[le] == ' ') {
		le++
	}
	label := text[ls:le]
	if !hasPrefix(text[le:], "-----") ||
		!bytes.HasSuffix(label, []byte("PRIVATE KEY")) && !bytes.HasSuffix(label, []byte("PRIVATE KEY BLOCK")) {
		return nil, -1
	}
	return label, le + 5
}

// isPEMStart reports whether a PEM private key to be found starts at
// text[i]. Scans of other kinds stop there, so that they end as they would
// in the masked text.
func (s *scanner) isPEMStart(i int) bool {
	if !s.set.Has(PEMKey) {
		return false
	}
	_, end := pemHeader(s.text, i)
	return end >= 0
}
