// Command faulty is a module that misbehaves on purpose, for the tests of
// gatewayd's fault handling: by its config it traps, loops forever,
// allocates without bound or answers garbage, on statements containing
// "fault" (policy) or on values containing "fault" (masking). In mode
// "remember" it denies each statement with the text of the one before it,
// to show what state an instance keeps.
package main

import (
	"encoding/json"
	"strings"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
)

var mode string

var (
	hoard [][]byte
	// previous is the last statement seen, in mode "remember".
	previous string
)

func misbehave() {
	switch mode {
	case "trap":
		panic("faulty module trapping on purpose")
	case "loop":
		for n := 0; ; n++ {
			if n < 0 {
				return
			}
		}
	case "alloc":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	}
}

func init() {
	guest.Register(guest.Module{
		Subscribe: abi.Subscribe(abi.SQLQuery, abi.SQLParse, abi.Rows),
		Init: func(config []byte) error {
			var c struct{ Mode string }
			if err := json.Unmarshal(config, &c); err != nil {
				return err
			}
			mode = c.Mode
			return nil
		},
		Policy: func(req *abi.Request) abi.Verdict {
			if mode == "remember" {
				prev := previous
				previous = req.Text
				if prev == "" {
					return abi.Verdict{}
				}
				return abi.Verdict{Action: abi.Deny, Reason: "previous statement: " + prev}
			}
			if !strings.Contains(req.Text, "fault") {
				return abi.Verdict{}
			}
			misbehave()
			return abi.Verdict{Action: abi.Action(99), Reason: "garbage"}
		},
		Mask: func(b *abi.Batch, c *abi.Changes) {
			for r := 0; r < b.Rows(); r++ {
				for col := range b.Columns {
					v, _ := b.Value(r, col)
					if strings.Contains(string(v), "fault") {
						misbehave()
						// Garbage: the same value changed twice, out of order.
						c.Set(r, col, []byte("x"))
						c.Set(r, col, []byte("y"))
						return
					}
				}
			}
		},
	})
}

func main() {}
