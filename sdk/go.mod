module github.com/gatewayd-access/gatewayd/sdk

go 1.26.8

require (
	github.com/tetratelabs/wazero v1.12.0 // indirect
	golang.org/x/sys v0.44.0 // indirect
)
