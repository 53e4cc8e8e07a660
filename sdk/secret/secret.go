// Package secret is the contract between gatewayd and a secret backend: the
// plugin that turns a reference such as "env:APP_DB_PASSWORD" into the
// credential gatewayd injects on the upstream side of a session.
//
// A backend is a plain Go interface. Built-in backends are linked into
// gatewayd; external ones run out of process behind the same interface.
package secret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Backend resolves secret references of one scheme. The core strips the
// "scheme:" prefix before calling Resolve, caches the answer for its TTL and
// never logs it. Implementations must be safe for concurrent use.
type Backend interface {
	Resolve(ctx context.Context, req ResolveRequest) (*ResolveResponse, error)
}

// ResolveRequest names one secret.
type ResolveRequest struct {
	// Reference is the part of the reference after "scheme:", for example
	// "APP_DB_PASSWORD" for "env:APP_DB_PASSWORD".
	Reference string
}

// ResolveResponse carries the secret value.
type ResolveResponse struct {
	Value Value
	// TTL bounds how long the core may cache Value. Zero lets the core use
	// its default.
	TTL time.Duration
}

// Errors a backend returns (wrapped) so the core can tell them apart. Their
// text never contains the secret.
var (
	ErrNotFound = errors.New("secret: not found")
	ErrInsecure = errors.New("secret: refused, storage is not private")
)

// Value holds secret bytes. Every way of printing it prints a placeholder, so
// a Value that reaches a log line, an error or an audit event by mistake does
// not disclose the secret. Use Reveal to get the bytes.
type Value struct{ b []byte }

// NewValue wraps b; the Value keeps a copy.
func NewValue(b []byte) Value { return Value{b: append([]byte(nil), b...)} }

// Reveal returns the secret as a string, for the one place that injects it.
func (v Value) Reveal() string { return string(v.b) }

// IsZero reports whether the value is empty.
func (v Value) IsZero() bool { return len(v.b) == 0 }

const redacted = "[redacted]"

// String implements fmt.Stringer.
func (Value) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Value) GoString() string { return redacted }

// Format implements fmt.Formatter so every verb prints the placeholder.
func (Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }

var (
	_ fmt.Stringer   = Value{}
	_ fmt.Formatter  = Value{}
	_ slog.LogValuer = Value{}
)
