package postgres

import (
	"strings"
)

// SQL EXECUTE of a marked statement. A statement prepared with Parse
// lives in the same namespace as SQL PREPARE's: "EXECUTE name(...)" in a
// Query or a Parse runs it without a Bind, so without the hold each Bind
// gets. Policy sees only "EXECUTE name"; the handler, which knows the
// marked names, refuses it.

// maxIdentifierBytes is PostgreSQL's NAMEDATALEN-1: longer identifiers and
// prepared statement names are compared on their first 63 bytes.
const maxIdentifierBytes = 63

// executeTargets returns the prepared statement names SQL text may
// EXECUTE (anywhere: EXPLAIN ANALYZE EXECUTE, CREATE TABLE AS EXECUTE),
// and whether every EXECUTE in it could be read. It reads the whole text,
// string literals and comments included, so that nothing hides an
// EXECUTE from it; a false match only refuses.
func executeTargets(text string) (names []string, ok bool) {
	ok = true
	for i := 0; i < len(text); {
		c := text[i]
		if !identStart(c) && !isDigit(c) {
			i++
			continue
		}
		j := i
		for j < len(text) && identChar(text[j]) {
			j++
		}
		if identStart(c) && strings.EqualFold(text[i:j], "execute") {
			name, read := identifierAt(text, j)
			if !read {
				ok = false
			} else {
				names = append(names, name)
			}
		}
		i = j
	}
	return names, ok
}

// identifierAt reads the identifier after whitespace and comments at i:
// unquoted (folded to lower case, as PostgreSQL does) or double-quoted.
func identifierAt(text string, i int) (string, bool) {
	for i < len(text) {
		switch {
		case strings.ContainsRune(" \t\n\r\f\v", rune(text[i])):
			i++
		case strings.HasPrefix(text[i:], "--"):
			for i < len(text) && text[i] != '\n' && text[i] != '\r' {
				i++
			}
		case strings.HasPrefix(text[i:], "/*"):
			depth := 0
			for i < len(text) {
				switch {
				case strings.HasPrefix(text[i:], "/*"):
					depth++
					i += 2
				case strings.HasPrefix(text[i:], "*/"):
					depth--
					i += 2
				default:
					i++
				}
				if depth == 0 {
					break
				}
			}
			if depth != 0 {
				return "", false
			}
		default:
			return identifierToken(text[i:])
		}
	}
	return "", false
}

func identifierToken(s string) (string, bool) {
	switch {
	case s[0] == '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), true
		}
		return "", false
	case identStart(s[0]):
		j := 0
		for j < len(s) && identChar(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '&' {
			return "", false // U&"..." escapes: not read here
		}
		return strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, s[:j]), true
	}
	return "", false
}

func identStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

func identChar(c byte) bool { return identStart(c) || isDigit(c) || c == '$' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// sameName compares two prepared statement names as PostgreSQL does.
func sameName(a, b string) bool {
	return a[:min(len(a), maxIdentifierBytes)] == b[:min(len(b), maxIdentifierBytes)]
}

// executesMarked returns the refusal of SQL text that EXECUTEs a
// statement needing review, or one that cannot be read while any is
// marked; nil otherwise.
func (t *tracker) executesMarked(text string) *refusal {
	if !t.marks.any() || !strings.Contains(strings.ToLower(text), "execute") {
		return nil
	}
	names, ok := executeTargets(text)
	if !ok {
		return &refusal{code: codeInsufficientPrivilege, msg: "gatewayd: this session has prepared statements that need approval at each execution, and the statement has an EXECUTE gatewayd cannot read; it was not run"}
	}
	for _, n := range names {
		if t.marks.matches(n, t.unmarked) {
			return &refusal{code: codeInsufficientPrivilege, msg: "gatewayd: prepared statement " + n +
				" needs approval at each execution; SQL EXECUTE of it is refused (execute it with Bind, as drivers do, to have it held for approval); it was not run"}
		}
	}
	return nil
}
