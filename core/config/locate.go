package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps key positions private, and the ones it has do not
// tell the elements of an array of tables apart. keyLines recovers them: it
// scans TOML text that the parser has already accepted and records the line
// on which every key path is defined.
//
// A key path is written as the dotted key, quoting segments that are not
// bare keys, with 0-based element indices: "connection[1].address",
// "identity.static[0]", "gateway.admin_groups[2]". A table's path maps to
// the line of its header ([listen.postgres], [[connection]]) or, for a table
// only implied by dotted keys, to the first line that implies it.
//
// The scanner understands table and array-of-tables headers, dotted and
// quoted keys, all four string forms (multi-line ones included), arrays
// spanning lines, inline tables and comments. It never fails: on input it
// does not understand it skips to the next line.

// keyLines returns the line (1-based) of every key path defined in text.
func keyLines(text string) map[string]int {
	s := &scanner{
		src:    text,
		line:   1,
		lines:  make(map[string]int),
		arrays: make(map[string]int),
	}
	if strings.HasPrefix(text, "\ufeff") {
		s.pos = len("\ufeff") // a byte order mark is not a key
	}
	s.document()
	return s.lines
}

type scanner struct {
	src    string
	pos    int
	line   int
	lines  map[string]int
	arrays map[string]int // path of an array of tables -> elements seen
}

func (s *scanner) eof() bool { return s.pos >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *scanner) next() byte {
	c := s.src[s.pos]
	s.pos++
	if c == '\n' {
		s.line++
	}
	return c
}

// skipSpace skips blanks on the current line.
func (s *scanner) skipSpace() {
	for !s.eof() && (s.peek() == ' ' || s.peek() == '\t' || s.peek() == '\r') {
		s.pos++
	}
}

// skipLine skips to the start of the next line.
func (s *scanner) skipLine() {
	for !s.eof() && s.next() != '\n' {
	}
}

// skipBlank skips blanks, newlines and comments.
func (s *scanner) skipBlank() {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.next()
		case '#':
			for !s.eof() && s.peek() != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

// record notes the line of path unless it is known already.
func (s *scanner) record(path string, line int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

func (s *scanner) document() {
	table := "" // path of the table key/value pairs go to
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		start := s.pos
		if s.peek() == '[' {
			table = s.header()
		} else {
			s.keyValue(table)
		}
		s.skipSpace()
		if s.pos == start || !s.eof() && s.peek() != '\n' {
			// A comment, or something not understood: skip the rest.
			s.skipLine()
		}
	}
}

// header reads "[a.b]" or "[[a.b]]" and returns the table's path.
func (s *scanner) header() string {
	line := s.line
	s.next() // '['
	array := s.peek() == '['
	if array {
		s.next()
	}
	s.skipSpace()
	keys := s.key()
	s.skipSpace()
	if s.peek() == ']' {
		s.next()
	}
	if array && s.peek() == ']' {
		s.next()
	}
	if len(keys) == 0 {
		return ""
	}
	path := ""
	for i, k := range keys {
		path = joinKey(path, k)
		last := i == len(keys)-1
		if last && array {
			n := s.arrays[path]
			s.arrays[path] = n + 1
			path = indexKey(path, n)
			s.lines[path] = line
			continue
		}
		if n, ok := s.arrays[path]; ok && !last {
			// [connection.options] after [[connection]]: a table in the
			// last element.
			path = indexKey(path, n-1)
		}
		if last {
			s.lines[path] = line
		} else {
			s.record(path, line)
		}
	}
	return path
}

// keyValue reads "key = value" and records the key's path under table.
func (s *scanner) keyValue(table string) {
	line := s.line
	keys := s.key()
	if len(keys) == 0 {
		return
	}
	path := table
	for i, k := range keys {
		path = joinKey(path, k)
		if i < len(keys)-1 {
			s.record(path, line)
		}
	}
	s.lines[path] = line
	s.skipSpace()
	if s.peek() != '=' {
		return
	}
	s.next()
	s.skipSpace()
	s.value(path)
}

// key reads a possibly dotted key and returns its segments.
func (s *scanner) key() []string {
	var keys []string
	for {
		s.skipSpace()
		var k string
		var ok bool
		switch s.peek() {
		case '"':
			k, ok = s.basicString()
		case '\'':
			k, ok = s.literalString()
		default:
			k, ok = s.bareKey()
		}
		if !ok {
			return keys
		}
		keys = append(keys, k)
		s.skipSpace()
		if s.peek() != '.' {
			return keys
		}
		s.next()
	}
}

func (s *scanner) bareKey() (string, bool) {
	start := s.pos
	for !s.eof() && isBare(s.peek()) {
		s.pos++
	}
	return s.src[start:s.pos], s.pos > start
}

func isBare(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// basicString reads a "..." string (the scanner is on the quote) and returns
// its value.
func (s *scanner) basicString() (string, bool) {
	start := s.pos
	s.next()
	for !s.eof() {
		switch s.next() {
		case '\\':
			if !s.eof() {
				s.next()
			}
		case '"':
			raw := s.src[start:s.pos]
			if v, err := strconv.Unquote(raw); err == nil {
				return v, true
			}
			return raw[1 : len(raw)-1], true
		case '\n':
			return "", false
		}
	}
	return "", false
}

// literalString reads a '...' string.
func (s *scanner) literalString() (string, bool) {
	s.next()
	start := s.pos
	for !s.eof() {
		switch s.next() {
		case '\'':
			return s.src[start : s.pos-1], true
		case '\n':
			return "", false
		}
	}
	return "", false
}

// multiline skips a multi-line string, basic or literal; the scanner is on the
// opening delimiter.
func (s *scanner) multiline(quote byte) {
	s.pos += 3
	for !s.eof() {
		c := s.next()
		if c == '\\' && quote == '"' {
			if !s.eof() {
				s.next()
			}
			continue
		}
		if c == quote && strings.HasPrefix(s.src[s.pos:], string([]byte{quote, quote})) {
			s.pos += 2
			// Up to two more quotes belong to the string: """a"""""
			for i := 0; i < 2 && s.peek() == quote; i++ {
				s.pos++
			}
			return
		}
	}
}

// value skips one value, recording the elements of arrays and the keys of
// inline tables under path.
func (s *scanner) value(path string) {
	switch {
	case strings.HasPrefix(s.src[s.pos:], `"""`):
		s.multiline('"')
	case strings.HasPrefix(s.src[s.pos:], `'''`):
		s.multiline('\'')
	case s.peek() == '"':
		s.basicString()
	case s.peek() == '\'':
		s.literalString()
	case s.peek() == '[':
		s.next()
		for i := 0; ; i++ {
			s.skipBlank()
			if s.eof() || s.peek() == ']' {
				break
			}
			elem := indexKey(path, i)
			s.lines[elem] = s.line
			before := s.pos
			s.value(elem)
			s.skipBlank()
			if s.peek() == ',' {
				s.next()
			} else if s.pos == before {
				return
			}
		}
		if !s.eof() {
			s.next()
		}
	case s.peek() == '{':
		s.next()
		for {
			s.skipBlank()
			if s.eof() || s.peek() == '}' {
				break
			}
			line := s.line
			keys := s.key()
			if len(keys) == 0 {
				return
			}
			p := path
			for i, k := range keys {
				p = joinKey(p, k)
				if i < len(keys)-1 {
					s.record(p, line)
				}
			}
			s.lines[p] = line
			s.skipSpace()
			if s.peek() == '=' {
				s.next()
				s.skipSpace()
				s.value(p)
			}
			s.skipBlank()
			if s.peek() == ',' {
				s.next()
			}
		}
		if !s.eof() {
			s.next()
		}
	default:
		// Number, boolean or date-time (which may hold a space).
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.pos++
		}
	}
}

// joinKey appends key k to path, quoting k unless it is a bare key.
func joinKey(path, k string) string {
	seg := k
	bare := k != ""
	for i := 0; i < len(k); i++ {
		if !isBare(k[i]) {
			bare = false
			break
		}
	}
	if !bare {
		seg = strconv.Quote(k)
	}
	if path == "" {
		return seg
	}
	return path + "." + seg
}

// indexKey appends element index i (0-based) to path.
func indexKey(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// parentKey returns path without its last segment ("" for a top-level key).
func parentKey(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	// Find the last '.' that is not inside a quoted segment.
	inQuote := false
	last := -1
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case '.':
			if !inQuote {
				last = i
			}
		}
	}
	if last < 0 {
		return ""
	}
	return path[:last]
}
