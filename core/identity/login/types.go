package login

import "time"

// The JSON bodies of the login routes (API version 1). Fields are only
// ever added.

// StartRequest is the body of POST /v1/login/start.
type StartRequest struct {
	// RedirectURI is the client's loopback listener
	// (http://127.0.0.1:PORT/...), where the browser lands at the end.
	RedirectURI string `json:"redirect_uri"`
	// CodeChallenge is base64url(sha256(verifier)) of a secret the client
	// keeps: only its holder can redeem the login (POST /v1/login/finish).
	CodeChallenge string `json:"code_challenge"`
	// SSHPublicKey, when set (an authorized_keys line), is certified by the
	// gateway's user CA for the life of the token.
	SSHPublicKey string `json:"ssh_public_key,omitempty"`
}

// StartResponse is the answer to POST /v1/login/start.
type StartResponse struct {
	// AuthURL is the identity provider's login page to open in a browser.
	AuthURL string    `json:"auth_url"`
	Expires time.Time `json:"expires"`
}

// FinishRequest is the body of POST /v1/login/finish.
type FinishRequest struct {
	// Code is the one-time code the browser brought to the redirect URI.
	Code string `json:"code"`
	// CodeVerifier is the secret whose challenge started the login.
	CodeVerifier string `json:"code_verifier"`
}

// DeviceRequest is the body of POST /v1/login/device.
type DeviceRequest struct {
	CodeChallenge string `json:"code_challenge"`
	SSHPublicKey  string `json:"ssh_public_key,omitempty"`
}

// DeviceResponse is the answer to POST /v1/login/device: what to show the
// user, and the id to poll with.
type DeviceResponse struct {
	LoginID                 string    `json:"login_id"`
	VerificationURI         string    `json:"verification_uri"`
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	UserCode                string    `json:"user_code"`
	Interval                int       `json:"interval"` // seconds between polls
	Expires                 time.Time `json:"expires"`
}

// PollRequest is the body of POST /v1/login/device/poll.
type PollRequest struct {
	LoginID      string `json:"login_id"`
	CodeVerifier string `json:"code_verifier"`
}

// Result is the answer to POST /v1/login/finish and to a poll whose login
// is complete: the gateway token and what it says. It is handed out once.
type Result struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	Name    string    `json:"name"`
	Email   string    `json:"email"`
	Groups  []string  `json:"groups"`
	// SSHCertificate is the certificate of the StartRequest's key
	// (authorized_keys format), when one was given.
	SSHCertificate string `json:"ssh_certificate,omitempty"`
	// Listeners are the ports of the gateway's protocol listeners by
	// protocol ("postgres", "ssh").
	Listeners map[string]int `json:"listeners,omitempty"`
	// SSHHostKey is the gateway's SSH host key (authorized_keys format), so
	// that the client can pin it without trusting it on first use.
	SSHHostKey string `json:"ssh_host_key,omitempty"`
}

// Pending is the answer to a poll of a device login not complete yet
// (status 202).
type Pending struct {
	Status string `json:"status"` // "pending"
}

// Connection is one connection the caller may use (GET /v1/connections).
type Connection struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	// Port is the gateway listener's port for the protocol, 0 when unknown.
	Port int `json:"port"`
}

// ConnectionList is the body of GET /v1/connections.
type ConnectionList struct {
	Connections []Connection `json:"connections"`
}
