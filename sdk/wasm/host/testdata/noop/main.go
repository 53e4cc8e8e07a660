// Command noop is a masking module that changes nothing: what a call costs
// beyond the module's own work.
package main

import (
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
)

func init() {
	guest.Register(guest.Module{Mask: func(*abi.Batch, *abi.Changes) {}})
}

func main() {}
