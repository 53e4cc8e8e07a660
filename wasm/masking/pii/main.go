// Command pii is gatewayd's built-in masking module: it finds personal data
// and secrets (email, payment card, US SSN, phone, IBAN, IPv4, AWS access
// key ids, JWTs, PEM private keys) in every text value by content, masks
// whole values of columns by name, in full, partially or by keyed hash.
// Build it with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared (make wasm).
package main

import "github.com/gatewayd-access/gatewayd/sdk/wasm/guest"

func init() { guest.Register(Module()) }

func main() {}
