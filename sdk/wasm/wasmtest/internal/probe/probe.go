// Package probe is a module for testing the guest SDK and wasmtest: it
// answers from what its input says, so that tests can reach every path of
// the ABI, faults included. Its main package is ./module.
package probe

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
)

// Module is the probe. Its config is {"refuse": "why"} to refuse it, or
// {"prefix": "p"} to prefix every changed value with p.
var Module = guest.Module{Init: configure, Policy: policy, Mask: mask}

var prefix string

func configure(config []byte) error {
	var c struct{ Refuse, Prefix string }
	d := json.NewDecoder(bytes.NewReader(config))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return err
	}
	if c.Refuse != "" {
		return errors.New(c.Refuse)
	}
	prefix = c.Prefix
	return nil
}

// policy: a request text "panic" panics, "action N" answers action N; a
// DROP is denied, a DELETE held for review by "dba"; anything else is
// allowed with a reason echoing the session and the attribute "name".
func policy(req *abi.Request) abi.Verdict {
	switch {
	case req.Text == "panic":
		panic("probe: asked to panic")
	case req.Text == "action 7":
		return abi.Verdict{Action: 7}
	}
	for _, st := range req.Statements {
		switch st.Kind {
		case "DROP":
			return abi.Verdict{Action: abi.Deny, Reason: "no DROP of " + strings.Join(st.Tables, ",")}
		case "DELETE":
			return abi.Verdict{Action: abi.Review, Reason: "DELETE needs a review", Reviewers: []string{"dba", "sre"}}
		}
	}
	s := req.Session
	return abi.Verdict{Reason: strings.Join([]string{req.Kind.String(), s.ID, s.Identity, s.Email,
		strings.Join(s.Groups, "+"), s.Connection, s.Protocol, req.Attr("name")}, "|")}
}

// mask acts by column name: "upper" upper-cases values, "null" nulls them,
// "empty" empties them. A value "terminate" ends the session, "panic"
// panics, "disorder" records its change twice.
func mask(b *abi.Batch, c *abi.Changes) {
	for row := range b.Rows() {
		for col, column := range b.Columns {
			v, null := b.Value(row, col)
			switch string(v) {
			case "terminate":
				c.Action, c.Reason = abi.Terminate, "terminated at row "+string(rune('0'+row))
				return
			case "panic":
				panic("probe: asked to panic")
			case "disorder":
				c.Set(row, col, []byte("x"))
				c.Set(row, col, []byte("y"))
				continue
			}
			switch {
			case null:
			case column.Name == "upper":
				c.Set(row, col, append([]byte(prefix), bytes.ToUpper(v)...))
			case column.Name == "null":
				c.SetNull(row, col)
			case column.Name == "empty":
				c.Set(row, col, []byte{})
			}
		}
	}
}
