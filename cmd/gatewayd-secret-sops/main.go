// Command gatewayd-secret-sops is gatewayd's secret plugin for files
// encrypted with sops: it serves references such as
// secret = "sops:secrets/app.yaml#app_db" (see package
// plugins/secrets/sops for the syntax). gatewayd starts it from a
// [[plugin]] table:
//
//	[[plugin]]
//	name = "sops"
//	kind = "secret"
//	path = "/usr/local/lib/gatewayd/gatewayd-secret-sops"
//	sha256 = "…"   # sha256sum gatewayd-secret-sops
//	env = { SOPS_AGE_KEY_FILE = "/etc/gatewayd/age.key" }
//
// Run by hand it says it is a plugin and exits.
package main

import (
	"github.com/gatewayd-access/gatewayd/plugins/secrets/sops"
	"github.com/gatewayd-access/gatewayd/sdk/secret/secretplugin"
)

func main() {
	secretplugin.Serve(sops.New())
}
