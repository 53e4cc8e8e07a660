package store

import "time"

// TokenRevocations keeps the ids of revoked gateway tokens until the
// tokens expire, so that a revocation outlives a restart of the gateway.
type TokenRevocations interface {
	// RevokeToken records that the token id is revoked until expires
	// (revoking again moves the expiry), and may forget revocations that
	// have expired.
	RevokeToken(id string, expires time.Time) error
	// RevokedTokens returns the revoked ids that have not expired by now,
	// with their expiry in UTC.
	RevokedTokens(now time.Time) (map[string]time.Time, error)
}
