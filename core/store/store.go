// Package store is gatewayd's state behind one interface: sessions and the
// audit log. The embedded SQLite implementation lives in store/sqlite; a
// PostgreSQL one for several replicas can follow behind the same interface.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("store: not found")

// Store keeps gatewayd's state. Implementations are safe for concurrent use.
type Store interface {
	// CreateSession records a session at its start.
	CreateSession(ctx context.Context, s Session) error
	// EndSession records the end of a session.
	EndSession(ctx context.Context, end SessionEnd) error
	// Session returns one session.
	Session(ctx context.Context, id string) (Session, error)
	// Sessions lists sessions, newest first.
	Sessions(ctx context.Context, f SessionFilter) ([]Session, error)

	// AppendEvents appends audit events in one transaction. Each event
	// already carries its sequence number and hashes (see package audit);
	// the store refuses a sequence number that does not follow the last one.
	AppendEvents(ctx context.Context, evs []Event) error
	// LastEvent returns the newest event, or ErrNotFound when the log is
	// empty.
	LastEvent(ctx context.Context) (Event, error)
	// Events calls fn for each event matching f in sequence order, stopping
	// at the first error fn returns.
	Events(ctx context.Context, f EventFilter, fn func(Event) error) error

	// ReviewStore keeps access requests and held statements (review.go).
	ReviewStore
	// TokenRevocations keeps revoked gateway tokens until they expire.
	TokenRevocations

	Close() error
}

// Session is one client connection of one identity to one connection.
type Session struct {
	ID         string
	Protocol   string
	Connection string
	Identity   string // identity name
	Email      string
	ClientAddr string
	Started    time.Time
	Ended      time.Time // zero while open
	EndReason  string
	BytesIn    int64
	BytesOut   int64
	Requests   int64
}

// SessionEnd carries what is known when a session ends.
type SessionEnd struct {
	ID       string
	Ended    time.Time
	Reason   string
	BytesIn  int64
	BytesOut int64
	Requests int64
}

// SessionFilter selects sessions. Zero fields match everything.
type SessionFilter struct {
	Identity string
	Limit    int // 0 means a default of 100
}

// Event is one stored audit record. Data is canonical JSON (see package
// audit) and is stored and returned byte for byte, so the chain can be
// recomputed.
type Event struct {
	Seq        int64
	Time       time.Time // UTC, nanosecond precision
	Kind       string
	SessionID  string
	Identity   string
	Connection string
	Data       []byte
	PrevHash   string // hex sha256 of the previous event, "" for the first
	Hash       string // hex sha256 of this event (see audit.Hash)
}

// EventFilter selects events. Zero fields match everything.
type EventFilter struct {
	SessionID string
	Kind      string
	AfterSeq  int64
}
