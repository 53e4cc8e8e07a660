// Package wasm holds gatewayd's built-in policy and masking modules: their
// Go sources (policy/sqlguard, masking/pii, built for GOOS=wasip1) and the
// .wasm files built from them, embedded in gatewayd. `make wasm` rebuilds
// the .wasm files; `make wasm-check` (part of `make test`) proves the
// committed ones are what the sources build to.
package wasm

import _ "embed"

var (
	//go:embed masking/pii.wasm
	pii []byte
	//go:embed policy/sqlguard.wasm
	sqlguard []byte
)

// Builtins returns the built-in modules' .wasm bytes by name, as
// gateway.toml names them.
func Builtins() map[string][]byte {
	return map[string][]byte{"pii": pii, "sqlguard": sqlguard}
}
