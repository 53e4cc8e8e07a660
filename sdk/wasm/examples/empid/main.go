// Command empid is a gatewayd masking module: it masks employee ids such as
// EMP-123456 in every text value to EMP-******, keeping the last keep_last
// digits when its config asks for them:
//
//	[masking.config]
//	keep_last = 2
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o empid.wasm ./...
package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
)

// module is a masking module with a config.
var module = guest.Module{Init: configure, Mask: mask}

func init() { guest.Register(module) }

// main is never run: a module is a reactor, driven through its exports.
func main() {}

// keepLast is how many trailing digits stay visible.
var keepLast int

// configure reads the module's config table, refusing unknown keys.
func configure(config []byte) error {
	var c struct {
		KeepLast int `json:"keep_last"`
	}
	d := json.NewDecoder(bytes.NewReader(config))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return fmt.Errorf("empid: %w", err)
	}
	if c.KeepLast < 0 || c.KeepLast > digits {
		return fmt.Errorf("empid: keep_last is %d, not between 0 and %d", c.KeepLast, digits)
	}
	keepLast = c.KeepLast
	return nil
}

const (
	prefix = "EMP-"
	digits = 6
	idLen  = len(prefix) + digits
)

// scratch holds the masked values of one call. The gateway copies them out
// when mask returns, so the next call reuses it.
var scratch []byte

// mask records a masked copy of every text value holding an id.
func mask(b *abi.Batch, c *abi.Changes) {
	scratch = scratch[:0]
	for row := range b.Rows() {
		for col, column := range b.Columns {
			if !isText(column) {
				continue
			}
			v, _ := b.Value(row, col) // a NULL has no bytes, so no id
			at := nextID(v, 0)
			if at < 0 {
				continue
			}
			start := len(scratch)
			scratch = append(scratch, v...)
			masked := scratch[start:]
			for ; at >= 0; at = nextID(v, at+idLen) {
				for i := at + len(prefix); i < at+idLen-keepLast; i++ {
					masked[i] = '*'
				}
			}
			c.Set(row, col, masked)
		}
	}
}

// isText reports whether a column's values are text: every value in text
// format, and binary values of the types whose binary form is their text
// (text, varchar, bpchar, name, json, xml, unknown; jsonb's has a version
// byte in front, which masking leaves alone).
func isText(c abi.Column) bool {
	if c.Format == 0 {
		return true
	}
	switch c.Type {
	case 25, 1043, 1042, 19, 114, 142, 705, 3802:
		return true
	}
	return false
}

// nextID returns where the first id at or after from starts in v, or -1.
// An id is EMP- and exactly six digits, between word boundaries.
func nextID(v []byte, from int) int {
	for from+idLen <= len(v) {
		i := bytes.Index(v[from:], []byte(prefix))
		if i < 0 {
			return -1
		}
		at := from + i
		if isID(v, at) {
			return at
		}
		from = at + 1
	}
	return -1
}

func isID(v []byte, at int) bool {
	end := at + idLen
	if end > len(v) || at > 0 && isWord(v[at-1]) || end < len(v) && isWord(v[end]) {
		return false
	}
	for _, d := range v[at+len(prefix) : end] {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}

func isWord(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
