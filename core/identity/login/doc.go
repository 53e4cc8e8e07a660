// Package login signs people in through the company identity provider:
// the gateway is a confidential OpenID Connect client (coreos/go-oidc and
// x/oauth2: authorization code with PKCE, state and nonce, or the device
// authorization grant), and turns a verified ID token into its own
// short-lived gateway token and SSH user certificate for gatewayctl.
//
// The browser flow (docs/identity.md has the details and the checks):
//
//	gatewayctl                     gatewayd API                      provider
//	  |-- POST /v1/login/start ------->|                                  |
//	  |   loopback redirect_uri,       | state, nonce, PKCE verifier      |
//	  |   S256(client verifier), key   | (single use, login_timeout)      |
//	  |<------------ auth_url ---------|                                  |
//	  |  browser ------------------------------------------------------->| sign in
//	  |                                |<-- GET /v1/login/callback -------|
//	  |                                |--- code + verifier + secret ---->|
//	  |                                |<-------- ID token ---------------|
//	  |                                | verify; issue token, certificate |
//	  |<-- browser: 302 loopback ?code=one-time -------------------------|
//	  |-- POST /v1/login/finish (code, client verifier) --> token, cert   |
//
// The device flow: POST /v1/login/device starts the device authorization
// grant at the provider; the gateway polls the provider, gatewayctl polls
// POST /v1/login/device/poll with its verifier.
package login
