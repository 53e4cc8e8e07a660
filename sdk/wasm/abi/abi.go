// Package abi is the wire side of gatewayd's WASM module ABI (../ABI.md):
// the frame kinds, actions and limits, and the little-endian encodings of
// every input and output crossing between the gateway and a module, written
// once for both the host and the Go guest SDK.
//
// Decoders never panic on any input: a short or inconsistent buffer is an
// ErrMalformed, which the host treats as a module fault.
package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Version of the ABI this package implements.
const (
	Major = 1
	Minor = 0
	Patch = 1
)

// Names of the exports of a module (ABI.md, "Exports").
const (
	ExportVersion = "gw_abi_version_1"
	// ExportVersionPrefix is how the host finds a module's major version.
	ExportVersionPrefix = "gw_abi_version_"
	ExportBuffer        = "gw_buffer"
	ExportInit          = "gw_init"
	ExportPolicy        = "gw_policy"
	ExportMask          = "gw_mask"
)

// MaxOutput bounds what a host reads back from one call.
const MaxOutput = 16 << 20

// ErrMalformed reports a buffer that does not decode.
var ErrMalformed = errors.New("abi: malformed encoding")

// FrameKind is a kind of request or response frame.
type FrameKind uint32

// Request frame kinds.
const (
	SQLQuery        FrameKind = 1
	SQLParse        FrameKind = 2
	SQLFunctionCall FrameKind = 3
	ShellExec       FrameKind = 4
	ShellSession    FrameKind = 5
	Subsystem       FrameKind = 6
	PortForward     FrameKind = 7 // ABI 1.0.2
)

// Response frame kinds.
const (
	Rows         FrameKind = 9
	Copy         FrameKind = 10
	Message      FrameKind = 11
	Notification FrameKind = 12
	Output       FrameKind = 13
)

var kindNames = map[FrameKind]string{
	SQLQuery: "sql.query", SQLParse: "sql.parse", SQLFunctionCall: "sql.function_call",
	ShellExec: "shell.exec", ShellSession: "shell.session", Subsystem: "subsystem", PortForward: "port_forward",
	Rows: "rows", Copy: "copy", Message: "message", Notification: "notification", Output: "output",
}

func (k FrameKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// IsRequest reports whether k is a request frame kind.
func (k FrameKind) IsRequest() bool { return k >= SQLQuery && k <= 8 }

// Subscription is a set of frame kinds: bit k-1 for kind k.
type Subscription uint32

// Subscribe returns the set of kinds.
func Subscribe(kinds ...FrameKind) Subscription {
	var s Subscription
	for _, k := range kinds {
		if k >= 1 && k <= 32 {
			s |= 1 << (k - 1)
		}
	}
	return s
}

// Has reports whether k is in the set.
func (s Subscription) Has(k FrameKind) bool { return k >= 1 && k <= 32 && s&(1<<(k-1)) != 0 }

// Requests reports whether the set holds any request kind.
func (s Subscription) Requests() bool { return s&0xff != 0 }

// Responses reports whether the set holds any response kind.
func (s Subscription) Responses() bool { return s&^0xff != 0 }

// Action is what a module answers.
type Action uint32

// Actions. Masking modules answer only Allow (carry on) or Terminate.
const (
	Allow     Action = 0
	Deny      Action = 1
	Review    Action = 2
	Terminate Action = 3
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Review:
		return "review"
	case Terminate:
		return "terminate"
	}
	return fmt.Sprintf("action(%d)", uint32(a))
}

// Session is the session a frame belongs to.
type Session struct {
	ID         string
	Identity   string
	Email      string
	Groups     []string
	Connection string
	Protocol   string
}

// StatementFlags describe what a statement touches beyond its kind.
type StatementFlags uint32

// Statement flags.
const (
	CopyFrom StatementFlags = 1 << iota
	CopyTo
	CopyProgram
	CopyFile
	Dynamic
	// DynamicArgs marks a command whose name is known but some argument is
	// an expansion (ABI 1.0.1).
	DynamicArgs
)

// Statement is the parsed form of one statement of a request.
type Statement struct {
	Kind      string
	Object    string
	Kinds     []string
	Tables    []string
	Functions []string
	Flags     StatementFlags
}

// Attr is a kind-specific detail of a request.
type Attr struct{ Key, Value string }

// Request is a request frame: the policy input.
type Request struct {
	Kind       FrameKind
	Session    Session
	Text       string
	Statements []Statement
	Attrs      []Attr
}

// Attr returns the value of the attribute key, or "".
func (r *Request) Attr(key string) string {
	for _, a := range r.Attrs {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// Verdict is the policy output.
type Verdict struct {
	Action    Action
	Reason    string
	Reviewers []string
}

// InitResult is the output of gw_init.
type InitResult struct {
	Status    uint32
	Subscribe Subscription
	Message   string
}

// Column describes one column of a batch.
type Column struct {
	Name   string
	Type   uint32 // PostgreSQL type OID, 0 when unknown
	Format uint32 // 0 text, 1 binary
}

// Batch is a masking input: rows of values under columns. Values are
// appended row by row; a decoded batch's values alias the decoded buffer.
type Batch struct {
	Kind    FrameKind
	Session Session
	Columns []Column

	vals  []byte // the encoded values
	spans []span // one per value, row-major
}

type span struct{ off, n int32 } // n == -1: NULL

// Reset empties b for reuse with new columns.
func (b *Batch) Reset(kind FrameKind, cols []Column) {
	b.Kind, b.Columns = kind, cols
	b.vals, b.spans = b.vals[:0], b.spans[:0]
}

// Append adds the next value, row by row.
func (b *Batch) Append(v []byte, null bool) {
	if null {
		b.vals = binary.LittleEndian.AppendUint32(b.vals, math.MaxUint32)
		b.spans = append(b.spans, span{0, -1})
		return
	}
	b.vals = binary.LittleEndian.AppendUint32(b.vals, uint32(len(v)))
	b.spans = append(b.spans, span{int32(len(b.vals)), int32(len(v))})
	b.vals = append(b.vals, v...)
}

// Rows is the number of complete rows in b.
func (b *Batch) Rows() int {
	if len(b.Columns) == 0 {
		return 0
	}
	return len(b.spans) / len(b.Columns)
}

// Value returns the value at (row, col); null reports SQL NULL.
func (b *Batch) Value(row, col int) (v []byte, null bool) {
	s := b.spans[row*len(b.Columns)+col]
	if s.n < 0 {
		return nil, true
	}
	return b.vals[s.off : s.off+s.n : s.off+s.n], false
}

// Size is the encoded size of b's values, for splitting batches.
func (b *Batch) Size() int { return len(b.vals) }

// Change replaces one value of a batch.
type Change struct {
	Row, Col int
	Value    []byte
	Null     bool
}

// Changes is the masking output.
type Changes struct {
	Action Action
	Reason string
	List   []Change
}

// Reset empties c for reuse.
func (c *Changes) Reset() {
	c.Action, c.Reason = Allow, ""
	c.List = c.List[:0]
}

// Set records a replacement value; changes must be recorded in increasing
// (row, col) order.
func (c *Changes) Set(row, col int, v []byte) {
	c.List = append(c.List, Change{Row: row, Col: col, Value: v})
}

// SetNull records a replacement by SQL NULL.
func (c *Changes) SetNull(row, col int) {
	c.List = append(c.List, Change{Row: row, Col: col, Null: true})
}
