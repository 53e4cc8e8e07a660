package sqlite

import (
	"context"
	"fmt"
)

// migrations bring the schema from version i to version i+1. They are
// append-only: a released migration is never edited, a change is a new
// entry. schema_version holds the number of migrations applied.
var migrations = []string{
	// 1: sessions and the audit log.
	`CREATE TABLE sessions (
		id          TEXT    PRIMARY KEY,
		protocol    TEXT    NOT NULL,
		connection  TEXT    NOT NULL,
		identity    TEXT    NOT NULL,
		email       TEXT    NOT NULL,
		client_addr TEXT    NOT NULL,
		started     INTEGER,          -- unix nanoseconds UTC, NULL when unknown
		ended       INTEGER,          -- unix nanoseconds UTC, NULL while open
		end_reason  TEXT    NOT NULL,
		bytes_in    INTEGER NOT NULL,
		bytes_out   INTEGER NOT NULL,
		requests    INTEGER NOT NULL
	);
	CREATE INDEX sessions_started ON sessions (started DESC);
	CREATE INDEX sessions_identity_started ON sessions (identity, started DESC);

	-- The audit log, in blocks (see the package comment): one row per
	-- AppendEvents, split only past maxBlockEvents or maxBlockBytes, so that
	-- SQLite's work per row is paid per block instead of per event.
	-- first_seq..last_seq are the block's events, 1, 2, 3, ... without gaps
	-- across blocks; data is their encoding (package internal/block), each
	-- event's data kept byte for byte.
	CREATE TABLE event_blocks (
		first_seq INTEGER PRIMARY KEY, -- the rowid
		last_seq  INTEGER NOT NULL,
		data      BLOB    NOT NULL
	);
	-- The blocks holding events of each session, for reading one session
	-- without decoding the whole log. Events outside a session (empty
	-- session_id) are not listed. Filters by kind decode and filter.
	CREATE TABLE event_sessions (
		session_id TEXT    NOT NULL,
		first_seq  INTEGER NOT NULL, -- event_blocks.first_seq
		PRIMARY KEY (session_id, first_seq)
	) WITHOUT ROWID;`,
	// 2: access requests and held statements waiting for reviewers.
	`CREATE TABLE reviews (
		id               TEXT    PRIMARY KEY,
		kind             TEXT    NOT NULL,
		status           TEXT    NOT NULL,
		identity         TEXT    NOT NULL,
		connection       TEXT    NOT NULL,
		session_id       TEXT    NOT NULL,
		request          TEXT    NOT NULL,
		text             TEXT    NOT NULL,
		params           BLOB,
		params_shown     TEXT    NOT NULL, -- JSON array of strings
		digest           TEXT    NOT NULL,
		reason           TEXT    NOT NULL,
		duration         INTEGER NOT NULL, -- nanoseconds
		reviewers        TEXT    NOT NULL, -- JSON array of groups
		min_approvals    INTEGER NOT NULL,
		created          INTEGER,          -- unix nanoseconds UTC
		hold_until       INTEGER,
		expires          INTEGER,
		approvals        TEXT    NOT NULL, -- JSON array of {reviewer, time}
		decided          INTEGER,
		denied_by        TEXT    NOT NULL,
		deny_reason      TEXT    NOT NULL,
		released         INTEGER,
		released_session TEXT    NOT NULL
	);
	CREATE INDEX reviews_created ON reviews (created DESC);
	CREATE INDEX reviews_digest ON reviews (digest, status);`,
	// 3: revoked gateway tokens, kept until they expire.
	`CREATE TABLE IF NOT EXISTS token_revocations (
		token_id TEXT    PRIMARY KEY,
		expires  INTEGER NOT NULL -- unix nanoseconds UTC
	);`,
}

// migrate creates or upgrades the schema in one transaction, and refuses a
// database written by a newer gatewayd.
func (s *Store) migrate(ctx context.Context) (err error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrating schema: creating schema_version: %w", err)
	}
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("migrating schema: reading version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("migrating schema: database is at version %d, this gatewayd knows %d: refusing to use a newer schema", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrating schema to version %d: %w", i+1, err)
		}
	}
	if version < len(migrations) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
			return fmt.Errorf("migrating schema: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, len(migrations)); err != nil {
			return fmt.Errorf("migrating schema: recording version: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating schema: committing: %w", err)
	}
	return nil
}
