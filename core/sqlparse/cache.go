package sqlparse

import (
	"container/list"
	"strings"
	"sync"
)

// Cache memoises Parse by text, errors included. It holds at most
// maxEntries texts and maxBytes bytes of text, dropping the least recently
// used first, and is safe for concurrent use. The statements it returns are
// shared between callers and must not be modified.
type Cache struct {
	maxEntries int
	maxBytes   int

	mu      sync.Mutex
	bytes   int
	order   *list.List // of *cacheEntry, most recently used first
	entries map[string]*list.Element
}

type cacheEntry struct {
	text  string
	stmts []Statement
	err   error
}

// NewCache returns a cache bounded by maxEntries texts and maxBytes bytes of
// text. A bound of zero or less disables caching: every call parses.
func NewCache(maxEntries int, maxBytes int) *Cache {
	return &Cache{
		maxEntries: maxEntries,
		maxBytes:   maxBytes,
		order:      list.New(),
		entries:    map[string]*list.Element{},
	}
}

// Parse returns Parse(text), from the cache when text was seen before.
// A nil *Cache parses every time.
func (c *Cache) Parse(text string) ([]Statement, error) {
	if c == nil || c.maxEntries <= 0 || c.maxBytes <= 0 || len(text) > c.maxBytes {
		return Parse(text)
	}
	key := text
	if k, ok := numbersZeroed(text); ok {
		key = k
	}
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.stmts, e.err
	}
	c.mu.Unlock()

	// Parse without the lock; two callers racing on one new text both
	// parse it and the second store is dropped.
	stmts, err := Parse(text)
	if err != nil && key != text {
		// An error names the token it stopped at: keep it for this exact
		// text only.
		return stmts, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok {
		return stmts, err
	}
	// Clone: text may be a slice of a larger buffer (a wire message)
	// that the cache must not keep alive.
	if key == text {
		key = strings.Clone(text)
	}
	e := &cacheEntry{text: key, stmts: stmts, err: err}
	c.entries[e.text] = c.order.PushFront(e)
	c.bytes += len(e.text)
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.evictOldest()
	}
	return stmts, err
}

// evictOldest drops the least recently used entry. Callers hold c.mu.
func (c *Cache) evictOldest() {
	el := c.order.Back()
	if el == nil {
		return
	}
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.entries, e.text)
	c.bytes -= len(e.text)
}

// numbersZeroed returns text with every numeric literal written as 0, so
// that statements differing only in their numbers (SELECT ... WHERE id = 42,
// then = 43: every statement of a client that does not use parameters)
// share one cache entry. The analysis of a statement never depends on the
// value of a number: kinds, tables, functions, COPY and DO details come
// from keywords, identifiers and strings.
//
// It refuses (ok false) any text holding a quote, a dollar sign, a
// backslash or a comment, or a byte outside ASCII: there, telling a number
// from part of a string, an identifier or a parameter takes PostgreSQL's
// full lexer, and a mistake could make two statements with different
// analyses share an entry. What remains is keywords, unquoted identifiers,
// operators, punctuation and numbers, where a number is a run of digits
// with no letter, digit or underscore on either side ("1.5" is two runs;
// "1e5", "0x1F", "1_000" and "t1" are left as they are).
func numbersZeroed(text string) (string, bool) {
	if strings.ContainsAny(text, "'\"$\\") || strings.Contains(text, "--") || strings.Contains(text, "/*") {
		return "", false
	}
	var b []byte
	last := 0
	for i := 0; i < len(text); {
		ch := text[i]
		if ch >= 0x80 {
			return "", false
		}
		if !isDigit(ch) || i > 0 && isIdent(text[i-1]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isDigit(text[j]) {
			j++
		}
		if j < len(text) && isIdent(text[j]) {
			i = j
			continue
		}
		if j-i == 1 && ch == '0' {
			i = j
			continue
		}
		b = append(b, text[last:i]...)
		b = append(b, '0')
		last, i = j, j
	}
	if b == nil {
		return text, true
	}
	return string(append(b, text[last:]...)), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '_' || c >= 0x80
}
