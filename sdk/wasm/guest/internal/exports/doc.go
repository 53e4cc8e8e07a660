// Package exports is the //go:wasmexport glue of the guest SDK: one file per
// section of ABI.md, each turning a wasm export into a call of the
// registered dispatcher. Its files build only for GOOS=wasip1; package
// guest imports it so that every module links the exports.
package exports
