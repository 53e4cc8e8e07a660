// Command module is the probe module's main package, for building to .wasm.
package main

import (
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest/internal/probe"
)

func init() { guest.Register(probe.Module) }

func main() {}
