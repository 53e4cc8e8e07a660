// Command sqlguard is gatewayd's built-in SQL policy module: it denies
// statement kinds, functions, tables, COPY ... PROGRAM and server files,
// enforces read-only connections, and asks for review of chosen statement
// kinds, with rules per group. Build it with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared (make wasm).
package main

import "github.com/gatewayd-access/gatewayd/sdk/wasm/guest"

func init() { guest.Register(Module()) }

func main() {}
