//go:build wasip1

package exports

import "github.com/gatewayd-access/gatewayd/sdk/wasm/guest/internal/dispatch"

// ABI.md, "init: input and result".

// Init is gw_init.
//
//go:wasmexport gw_init
func Init(n uint32) uint64 { return pack(dispatch.Registered.Init(int(n))) }
