//go:build wasip1

package exports

import "github.com/gatewayd-access/gatewayd/sdk/wasm/guest/internal/dispatch"

// ABI.md, "policy input" and "verdict".

// Policy is gw_policy.
//
//go:wasmexport gw_policy
func Policy(n uint32) uint64 { return pack(dispatch.Registered.Policy(int(n))) }
