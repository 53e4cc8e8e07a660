//go:build wasip1

package exports

import (
	"unsafe"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest/internal/dispatch"
)

// ABI.md, "Calling convention and memory": the host asks for an input
// buffer, writes the input there and calls an export with its length; the
// export returns where its output is. Both buffers belong to the dispatcher,
// a global, so the garbage collector (which never moves objects) keeps them
// alive while the host uses them.

// Buffer is gw_buffer.
//
//go:wasmexport gw_buffer
func Buffer(size uint32) uint32 {
	b := dispatch.Registered.Buffer(int(size))
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// pack returns out's address in the high 32 bits and its length in the low.
func pack(out []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(uint32(len(out)))
}
