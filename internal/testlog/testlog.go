// Package testlog is a log sink for tests: a buffer safe for the
// concurrent writes of a gateway's goroutines, read back in full.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer collects log output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
