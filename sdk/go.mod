module github.com/gatewayd-access/gatewayd/sdk

go 1.26.8
