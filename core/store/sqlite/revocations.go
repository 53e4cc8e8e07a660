package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

var _ store.TokenRevocations = (*Store)(nil)

// revocationTimeout bounds each revocation query.
const revocationTimeout = 10 * time.Second

// RevokeToken records that the gateway token id is revoked until expires,
// and forgets revocations that have expired.
func (s *Store) RevokeToken(id string, expires time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), revocationTimeout)
	defer cancel()
	if _, err := s.write.ExecContext(ctx,
		`INSERT INTO token_revocations (token_id, expires) VALUES (?, ?)
		 ON CONFLICT (token_id) DO UPDATE SET expires = excluded.expires`,
		id, expires.UTC().UnixNano()); err != nil {
		return fmt.Errorf("sqlite: revoking a token: %w", err)
	}
	if _, err := s.write.ExecContext(ctx, `DELETE FROM token_revocations WHERE expires < ?`, time.Now().UTC().UnixNano()); err != nil {
		return fmt.Errorf("sqlite: forgetting expired revocations: %w", err)
	}
	return nil
}

// RevokedTokens returns the revoked token ids that have not expired by now,
// with their expiry.
func (s *Store) RevokedTokens(now time.Time) (map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), revocationTimeout)
	defer cancel()
	rows, err := s.read.QueryContext(ctx, `SELECT token_id, expires FROM token_revocations WHERE expires >= ?`, now.UTC().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading revocations: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var exp int64
		if err := rows.Scan(&id, &exp); err != nil {
			return nil, fmt.Errorf("sqlite: reading revocations: %w", err)
		}
		out[id] = time.Unix(0, exp).UTC()
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: reading revocations: %w", err)
	}
	return out, nil
}
