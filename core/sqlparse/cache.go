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
	c.mu.Lock()
	if el, ok := c.entries[text]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.stmts, e.err
	}
	c.mu.Unlock()

	// Parse without the lock; two callers racing on one new text both
	// parse it and the second store is dropped.
	stmts, err := Parse(text)

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[text]; ok {
		return stmts, err
	}
	// Clone: text may be a slice of a larger buffer (a wire message)
	// that the cache must not keep alive.
	e := &cacheEntry{text: strings.Clone(text), stmts: stmts, err: err}
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
