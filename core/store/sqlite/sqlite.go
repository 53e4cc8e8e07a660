// Package sqlite is the embedded store.Store: one SQLite file in WAL mode,
// pure Go (modernc.org/sqlite, no cgo), for a gateway running on one machine.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeout is how long a connection waits for a lock held by another
// connection (a checkpoint, or another process such as gatewayctl) before
// failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// eventPage is how many events Events reads per query. Reading in pages by
// sequence number keeps no read transaction open while the caller's function
// runs, so a slow consumer (an export over the network) neither pins the WAL
// nor holds a connection.
const eventPage = 512

// defaultLimit is the number of sessions Sessions returns when the filter
// sets no limit.
const defaultLimit = 100

// Store is the SQLite store.Store. All writes go through one connection
// (SQLite has a single writer; serialising in the pool avoids SQLITE_BUSY
// between our own connections); reads use a separate pool, which WAL lets
// run concurrently with the writer.
type Store struct {
	path  string
	write *sql.DB
	read  *sql.DB

	// insertEvents[i] inserts insertSizes[i] events in one statement, on
	// write: fewer, larger statements cost much less per event than one
	// statement each (each execution has a fixed cost in database/sql and
	// the driver).
	insertEvents [len(insertSizes)]*sql.Stmt
	lastSeq      *sql.Stmt // on write, inside AppendEvents' transaction
}

// insertSizes are the row counts of the prepared event inserts, largest
// first; a batch is split greedily. 64 rows of 9 columns stay far below
// SQLite's limit of 32766 parameters.
var insertSizes = [...]int{64, 8, 1}

// Open opens (creating it if needed) the SQLite database at path and brings
// its schema up to date. A directory it has to create gets mode 0700, a new
// database file mode 0600; SQLite gives the -wal and -shm files the mode of
// the database file.
//
// Durability: the database runs in WAL mode with synchronous=NORMAL. A
// commit is then atomic and consistent but is not fsynced: the WAL is synced
// only at checkpoints. A process crash loses nothing that was committed; a
// power loss or kernel crash can lose the most recent commits (those since
// the last checkpoint), never corrupts the file and never leaves a partial
// transaction. For the audit chain that means a power loss can truncate the
// tail of the log, but cannot break the chain in the middle. FULL would
// fsync on every commit and cost several milliseconds per commit on most
// disks; the audit writer's group commit would amortise that, but NORMAL is
// the documented trade-off here (see docs/audit.md).
func Open(path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, errors.New("sqlite: a database file path is required")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store: resolving %q: %w", path, err)
	}
	if err := createFile(abs); err != nil {
		return nil, fmt.Errorf("opening sqlite store: %w", err)
	}

	s := &Store{path: abs}
	pragmas := []string{
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"foreign_keys(1)",
	}
	// The writer sets the persistent journal mode (WAL) before the readers
	// open, and starts its transactions IMMEDIATE so that a transaction never
	// has to upgrade a read lock to a write lock (which fails with BUSY
	// instead of waiting).
	s.write, err = sql.Open("sqlite", dsn(abs, append(pragmas, "journal_mode(WAL)", "synchronous(NORMAL)",
		// Statement journals of the multi-row inserts stay in memory rather
		// than in a temporary file written page by page; a larger page cache
		// keeps the index pages the appends touch.
		"temp_store(MEMORY)", "cache_size(-16384)"), "immediate"))
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store %s: %w", abs, err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)

	ctx := context.Background()
	if err := s.migrate(ctx); err != nil {
		s.write.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", abs, err)
	}

	s.read, err = sql.Open("sqlite", dsn(abs, append(pragmas, "query_only(1)"), ""))
	if err != nil {
		s.write.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.read.SetMaxOpenConns(n)
	s.read.SetMaxIdleConns(n)

	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", abs, err)
	}
	return s, nil
}

// createFile creates the database file with mode 0600 (and its directory
// with 0700) when it does not exist yet, so that SQLite never creates it with
// the process umask.
func createFile(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("creating database file: %w", err)
	}
	return f.Close()
}

// dsn builds a modernc.org/sqlite URI for path. The path is escaped as a
// file: URI so that a '?' or '#' in it cannot be taken for parameters.
func dsn(path string, pragmas []string, txlock string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	// url.URL renders "file:///abs/path"; SQLite accepts an empty authority.
	return u.String()
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
	for i, n := range insertSizes {
		// OR ROLLBACK: a conflict aborts the whole transaction, so SQLite
		// needs no statement journal for these multi-row inserts.
		q := `INSERT OR ROLLBACK INTO events (seq, time, kind, session_id, identity, connection, data, prev_hash, hash) VALUES ` +
			strings.TrimSuffix(strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?, ?), `, n), ", ")
		if s.insertEvents[i], err = s.write.PrepareContext(ctx, q); err != nil {
			return fmt.Errorf("preparing event insert: %w", err)
		}
	}
	if s.lastSeq, err = s.write.PrepareContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`); err != nil {
		return fmt.Errorf("preparing last sequence query: %w", err)
	}
	return nil
}

// Close closes the store's connections. The last connection to close
// checkpoints the WAL into the database file.
func (s *Store) Close() error {
	var errs []error
	for _, st := range append(s.insertEvents[:], s.lastSeq) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing sqlite store: %w", err)
	}
	return nil
}

// CreateSession records a session at its start.
func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	if ss.ID == "" {
		return errors.New("creating session: empty id")
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO sessions
		(id, protocol, connection, identity, email, client_addr, started, ended,
		 end_reason, bytes_in, bytes_out, requests)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ss.ID, ss.Protocol, ss.Connection, ss.Identity, ss.Email, ss.ClientAddr,
		nanos(ss.Started), nanos(ss.Ended), ss.EndReason, ss.BytesIn, ss.BytesOut, ss.Requests)
	if err != nil {
		return fmt.Errorf("creating session %s: %w", ss.ID, err)
	}
	return nil
}

// EndSession records the end of a session.
func (s *Store) EndSession(ctx context.Context, end store.SessionEnd) error {
	res, err := s.write.ExecContext(ctx, `UPDATE sessions SET
		ended = ?, end_reason = ?, bytes_in = ?, bytes_out = ?, requests = ?
		WHERE id = ?`,
		nanos(end.Ended), end.Reason, end.BytesIn, end.BytesOut, end.Requests, end.ID)
	if err != nil {
		return fmt.Errorf("ending session %s: %w", end.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("ending session %s: %w", end.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("ending session %s: %w", end.ID, store.ErrNotFound)
	}
	return nil
}

const sessionColumns = `id, protocol, connection, identity, email, client_addr,
	started, ended, end_reason, bytes_in, bytes_out, requests`

type scanner interface{ Scan(dest ...any) error }

func scanSession(sc scanner) (store.Session, error) {
	var (
		ss             store.Session
		started, ended sql.NullInt64
	)
	err := sc.Scan(&ss.ID, &ss.Protocol, &ss.Connection, &ss.Identity, &ss.Email,
		&ss.ClientAddr, &started, &ended, &ss.EndReason, &ss.BytesIn, &ss.BytesOut, &ss.Requests)
	ss.Started, ss.Ended = fromNanos(started), fromNanos(ended)
	return ss, err
}

// Session returns one session, or an error wrapping store.ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id)
	ss, err := scanSession(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, fmt.Errorf("reading session %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("reading session %s: %w", id, err)
	}
	return ss, nil
}

// Sessions lists sessions, newest (by start) first.
func (s *Store) Sessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	q := `SELECT ` + sessionColumns + ` FROM sessions`
	args := []any{}
	if f.Identity != "" {
		q += ` WHERE identity = ?`
		args = append(args, f.Identity)
	}
	q += ` ORDER BY started DESC, rowid DESC LIMIT ?`
	args = append(args, limit)

	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("listing sessions: %w", err)
		}
		out = append(out, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	return out, nil
}

// AppendEvents appends events in one transaction. The first event's Seq
// must be one more than the last stored one (1 on an empty log) and each
// following event's one more than its predecessor's; otherwise nothing is
// written and an error is returned.
func (s *Store) AppendEvents(ctx context.Context, evs []store.Event) (err error) {
	if len(evs) == 0 {
		return nil
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("appending events: beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	var last int64
	if err := tx.StmtContext(ctx, s.lastSeq).QueryRowContext(ctx).Scan(&last); err != nil {
		return fmt.Errorf("appending events: reading last sequence number: %w", err)
	}
	for i := range evs {
		if evs[i].Seq != last+1 {
			return fmt.Errorf("appending events: sequence number %d does not follow %d", evs[i].Seq, last)
		}
		last = evs[i].Seq
	}
	var args []any
	for i, n := range insertSizes {
		if len(evs) < n {
			continue
		}
		ins := tx.StmtContext(ctx, s.insertEvents[i])
		for len(evs) >= n {
			args = args[:0]
			for j := range n {
				ev := &evs[j]
				data := ev.Data
				if data == nil {
					data = []byte{} // NOT NULL; returned as empty
				}
				args = append(args, ev.Seq, ev.Time.UnixNano(), ev.Kind, ev.SessionID,
					ev.Identity, ev.Connection, data, ev.PrevHash, ev.Hash)
			}
			if _, err := ins.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("appending events %d-%d: %w", evs[0].Seq, evs[n-1].Seq, err)
			}
			evs = evs[n:]
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("appending events: committing: %w", err)
	}
	return nil
}

const eventColumns = `seq, time, kind, session_id, identity, connection, data, prev_hash, hash`

func scanEvent(sc scanner) (store.Event, error) {
	var (
		ev store.Event
		t  int64
	)
	err := sc.Scan(&ev.Seq, &t, &ev.Kind, &ev.SessionID, &ev.Identity, &ev.Connection,
		&ev.Data, &ev.PrevHash, &ev.Hash)
	ev.Time = time.Unix(0, t).UTC()
	if ev.Data == nil {
		ev.Data = []byte{}
	}
	return ev, err
}

// LastEvent returns the newest event, or an error wrapping store.ErrNotFound
// when the log is empty.
func (s *Store) LastEvent(ctx context.Context) (store.Event, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events ORDER BY seq DESC LIMIT 1`)
	ev, err := scanEvent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Event{}, fmt.Errorf("reading last event: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("reading last event: %w", err)
	}
	return ev, nil
}

// Events calls fn for each event matching f in sequence order, stopping at
// the first error fn returns (which Events returns unwrapped). Events are
// read in pages; fn runs with no transaction open, so it may call the store.
// Events appended while the iteration runs are included if they are reached.
func (s *Store) Events(ctx context.Context, f store.EventFilter, fn func(store.Event) error) error {
	q := `SELECT ` + eventColumns + ` FROM events WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.SessionID != "" {
		q += ` AND session_id = ?`
		args = append(args, f.SessionID)
	}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, f.Kind)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, eventPage)

	stmt, err := s.read.PrepareContext(ctx, q)
	if err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	defer stmt.Close()

	page := make([]store.Event, 0, eventPage)
	for {
		page, err = s.eventPage(ctx, stmt, args, page[:0])
		if err != nil {
			return fmt.Errorf("reading events after %d: %w", args[0], err)
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(page) < eventPage {
			return nil
		}
		args[0] = page[len(page)-1].Seq
	}
}

func (s *Store) eventPage(ctx context.Context, stmt *sql.Stmt, args []any, page []store.Event) ([]store.Event, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return page, err
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return page, err
		}
		page = append(page, ev)
	}
	return page, rows.Err()
}

// nanos stores a time as int64 Unix nanoseconds (UTC by definition), and
// the zero time as NULL.
func nanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

var _ store.Store = (*Store)(nil)
