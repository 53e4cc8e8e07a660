package shellparse

import (
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// arg is a word of a simple command: its value after quote removal when lit,
// otherwise its source text.
type arg struct {
	text string
	lit  bool
}

func (w *walker) arg(word *syntax.Word) arg {
	if v, ok := literal(word); ok {
		return arg{text: v, lit: true}
	}
	return arg{text: w.source(word)}
}

// literal is the value of a word after quote removal, when the shell would
// give it that value whatever the environment, the file system and the
// user: no expansion of any kind applies to it.
func literal(word *syntax.Word) (string, bool) {
	if word == nil || len(word.Parts) == 0 {
		return "", true
	}
	if lit, ok := word.Parts[0].(*syntax.Lit); ok && strings.HasPrefix(lit.Value, "~") {
		return "", false // tilde expansion
	}
	return literalParts(word.Parts)
}

// literalAssignValue is literal for the value of an assignment, where a
// tilde after '=' or ':' expands too.
func literalAssignValue(word *syntax.Word) (string, bool) {
	v, ok := literal(word)
	if !ok {
		return "", false
	}
	for _, p := range word.Parts {
		if lit, isLit := p.(*syntax.Lit); isLit && strings.Contains(lit.Value, ":~") {
			return "", false
		}
	}
	return v, true
}

func literalParts(parts []syntax.WordPart) (string, bool) {
	var sb strings.Builder
	var marks []mark // unquoted, unescaped characters that brace expansion sees
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
			if !unquotedLit(&sb, &marks, p.Value) {
				return "", false
			}
		case *syntax.SglQuoted:
			if p.Dollar {
				sb.WriteString(ansiC(p.Value))
			} else {
				sb.WriteString(p.Value)
			}
			marks = append(marks, 0)
		case *syntax.DblQuoted:
			if p.Dollar {
				return "", false // $"...": translated through the locale
			}
			for _, q := range p.Parts {
				lit, ok := q.(*syntax.Lit)
				if !ok {
					return "", false
				}
				unescape(&sb, lit.Value, "$`\"\\\n")
			}
			marks = append(marks, 0)
		default: // expansions, substitutions, extended globs
			return "", false
		}
	}
	if braceExpansion(marks) || bracketGlob(marks) {
		return "", false
	}
	return sb.String(), true
}

// mark is an unquoted, unescaped character that brace expansion or a glob
// bracket sees as syntax ('{', ',', '.', '}', '[', ']'), or 0 for anything
// else.
type mark byte

// bracketGlob reports whether a '[' has a ']' after it: a bracket
// expression of a glob. A lone '[' (the test command) is literal. It errs on
// the side of yes ("[]" alone is literal in bash).
func bracketGlob(marks []mark) bool {
	open := false
	for _, m := range marks {
		switch {
		case m == '[':
			open = true
		case m == ']' && open:
			return true
		}
	}
	return false
}

// unquotedLit removes the backslashes of an unquoted literal into sb and
// reports false when it holds an unescaped * or ?.
func unquotedLit(sb *strings.Builder, marks *[]mark, s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 < len(s) {
				i++
				c = s[i]
			}
			sb.WriteByte(c)
			*marks = append(*marks, 0)
			continue
		case '*', '?':
			return false
		case '{', ',', '.', '}', '[', ']':
			*marks = append(*marks, mark(c))
		default:
			*marks = append(*marks, 0)
		}
		sb.WriteByte(c)
	}
	return true
}

// unescape writes s to sb with the backslashes before the bytes of special
// removed, as inside double quotes or here-documents.
func unescape(sb *strings.Builder, s, special string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && strings.IndexByte(special, s[i+1]) >= 0 {
			i++
			c = s[i]
		}
		sb.WriteByte(c)
	}
}

// braceExpansion reports whether the unquoted syntax of a word holds a brace
// expansion: a '{' with a matching '}' and, between them at its level, a
// ',' or "..". It errs on the side of yes ({a..} is not expanded by bash).
func braceExpansion(marks []mark) bool {
	type open struct{ expands bool }
	var stack []open
	for i, m := range marks {
		switch m {
		case '{':
			stack = append(stack, open{})
		case ',':
			if len(stack) > 0 {
				stack[len(stack)-1].expands = true
			}
		case '.':
			if len(stack) > 0 && i+1 < len(marks) && marks[i+1] == '.' {
				stack[len(stack)-1].expands = true
			}
		case '}':
			if len(stack) > 0 {
				if stack[len(stack)-1].expands {
					return true
				}
				stack = stack[:len(stack)-1]
			}
		}
	}
	return false
}

// ansiC decodes the body of $'...' as bash does. Bash cuts the string at a
// NUL it produces (\0, \x00...), and so does ansiC.
func ansiC(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			sb.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'a':
			sb.WriteByte('\a')
		case 'b':
			sb.WriteByte('\b')
		case 'e', 'E':
			sb.WriteByte(0x1b)
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'v':
			sb.WriteByte('\v')
		case '\\', '\'', '"', '?':
			sb.WriteByte(e)
		case 'c':
			if i+1 == len(s) {
				sb.WriteString(`\c`)
				break
			}
			i++
			ctl := s[i]
			if ctl == '\\' && i+1 < len(s) && s[i+1] == '\\' {
				i++
			}
			if ctl == '?' {
				sb.WriteByte(0x7f)
			} else {
				if ctl&0x1f == 0 {
					return sb.String()
				}
				sb.WriteByte(ctl & 0x1f)
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v, n := digits(s[i:], 3, 8)
			i += n - 1
			if byte(v) == 0 {
				return sb.String()
			}
			sb.WriteByte(byte(v))
		case 'x', 'u', 'U':
			width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			v, n := digits(s[i+1:], width, 16)
			if n == 0 {
				sb.WriteByte('\\')
				sb.WriteByte(e)
				break
			}
			i += n
			if v == 0 {
				return sb.String()
			}
			if e == 'x' {
				sb.WriteByte(byte(v))
			} else if v <= utf8.MaxRune {
				sb.WriteRune(rune(v))
			} else {
				sb.WriteString(s[i-n-1 : i+1])
			}
		default:
			sb.WriteByte('\\')
			sb.WriteByte(e)
		}
	}
	return sb.String()
}

// digits reads up to max digits of base (8 or 16) from the start of s.
func digits(s string, max, base int) (v uint64, n int) {
	for n < max && n < len(s) {
		d := hexValue(s[n])
		if d < 0 || d >= base {
			break
		}
		v = v*uint64(base) + uint64(d)
		n++
	}
	return v, n
}

func hexValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// heredoc is the body of a here-document and whether it expands. A body
// that expands is given as written (backslashes kept), with the leading tabs
// of <<- removed.
func (w *walker) heredoc(r *syntax.Redirect) (string, bool) {
	if r.Hdoc == nil {
		return "", false
	}
	quoted := false // a quoted delimiter turns expansion off
	if r.Word != nil {
		for _, p := range r.Word.Parts {
			switch p := p.(type) {
			case *syntax.Lit:
				quoted = quoted || strings.Contains(p.Value, `\`)
			default:
				quoted = true
			}
		}
	}
	var sb strings.Builder
	expands := false
	for _, p := range r.Hdoc.Parts {
		if _, ok := p.(*syntax.Lit); !ok {
			expands = true
		}
	}
	for _, p := range r.Hdoc.Parts {
		lit, ok := p.(*syntax.Lit)
		switch {
		case !ok:
			// The node's source text: the body's own end position
			// lies past the delimiter line.
			sb.WriteString(w.source(p))
		case quoted || expands:
			sb.WriteString(lit.Value)
		default:
			unescape(&sb, lit.Value, "$`\\\n")
		}
	}
	body := sb.String()
	if r.Op == syntax.DashHdoc {
		lines := strings.SplitAfter(body, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimLeft(l, "\t")
		}
		body = strings.Join(lines, "")
	}
	return body, expands
}
