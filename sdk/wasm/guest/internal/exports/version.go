//go:build wasip1

package exports

import "github.com/gatewayd-access/gatewayd/sdk/wasm/abi"

// ABI.md, "Versions": a module declares its major version by the name of
// this export and returns its minor version.

// Version1 is gw_abi_version_1.
//
//go:wasmexport gw_abi_version_1
func Version1() uint32 { return abi.Minor }

// The export's name must follow abi.Major: this fails to compile otherwise.
var _ = [1]struct{}{}[abi.Major-1]
