package audit

// Event kinds of signing in through the identity provider.
const (
	KindLogin       = "login"        // a login through the identity provider succeeded
	KindLoginFailed = "login.failed" // a login was refused; Reason says why
	KindLogout      = "logout"       // the holder revoked its token
	KindTokenIssue  = "token.issue"  // the gateway issued a token
	KindTokenRevoke = "token.revoke" // a token was revoked
	KindCertIssue   = "cert.issue"   // the SSH user CA signed a certificate
)

// LoginData is the payload of login, login.failed and logout.
type LoginData struct {
	Flow     string   `json:"flow,omitempty"` // "browser" or "device"
	Subject  string   `json:"subject,omitempty"`
	Email    string   `json:"email,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Issuer   string   `json:"issuer,omitempty"`
	Client   string   `json:"client_addr,omitempty"`
	Reason   string   `json:"reason,omitempty"` // why a login was refused; never a credential
	TokenID  string   `json:"token_id,omitempty"`
	Duration int64    `json:"duration_ns,omitempty"`
}

// TokenData is the payload of token.issue and token.revoke: the token's id
// (jti), never the token.
type TokenData struct {
	TokenID string   `json:"token_id"`
	Subject string   `json:"subject,omitempty"`
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Expires string   `json:"expires"` // RFC 3339
}

// CertData is the payload of cert.issue.
type CertData struct {
	KeyID       string   `json:"key_id"`
	Serial      uint64   `json:"serial"`
	Principals  []string `json:"principals"`
	Fingerprint string   `json:"fingerprint"` // of the certified public key
	ValidBefore string   `json:"valid_before"`
}
