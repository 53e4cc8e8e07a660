// Command v2 claims a future major version of the module ABI.
package main

//go:wasmexport gw_abi_version_2
func version() int32 { return 0 }

func main() {}
