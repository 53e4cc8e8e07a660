//go:build wasip1

package exports

import "github.com/gatewayd-access/gatewayd/sdk/wasm/guest/internal/dispatch"

// ABI.md, "masking input" and "changes".

// Mask is gw_mask.
//
//go:wasmexport gw_mask
func Mask(n uint32) uint64 { return pack(dispatch.Registered.Mask(int(n))) }
