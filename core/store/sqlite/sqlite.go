// Package sqlite is the embedded store.Store: one SQLite file in WAL mode,
// pure Go (modernc.org/sqlite, no cgo), for a gateway running on one machine.
//
// Sessions are one row each. The audit log is stored in blocks: each
// AppendEvents writes its events as one row of event_blocks (first_seq,
// last_seq, and the events in a compact binary encoding, see
// internal/block), split into several rows only past maxBlockEvents events
// or maxBlockBytes bytes. SQLite's work per row and per index entry (the
// VDBE program, B-tree inserts) is then paid per block instead of per event;
// what remains is mostly per byte written, which the encoding keeps close to
// the size of the events' data. event_sessions lists, for each session, the
// blocks holding its events (one row per session and block), so that one
// session's events are read without decoding the whole log. Filters by kind
// and sequence number decode the blocks and filter; the blocks before
// AfterSeq are skipped by primary key. Events are read block by block, in
// pages, never the whole log at once.
//
// The hash chain (package audit) is over the events, not the blocks: a block
// is only how events are laid out.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/core/store/sqlite/internal/block"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeout is how long a connection waits for a lock held by another
// connection (a checkpoint, or another process such as gatewayctl) before
// failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Blocks are split past these bounds: a block holds at most maxBlockEvents
// events, and an event starts a new block when it would take the block past
// maxBlockBytes (a single larger event gets a block of its own).
const (
	maxBlockEvents = 4096
	maxBlockBytes  = 4 << 20
)

// Events reads blocks in pages of one query each, a page ending after the
// block that brings it to eventPage matching events or pageBytes of blocks
// read. Reading in pages by sequence number keeps no read transaction open
// while the caller's function runs, so a slow consumer (an export over the
// network) neither pins the WAL nor holds a connection, and bounds the
// memory an iteration holds to about a page (plus one block).
const (
	eventPage = 512
	pageBytes = 1 << 20
)

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

	// Statements on write, run inside AppendEvents' transaction.
	lastSeq     *sql.Stmt
	insertBlock *sql.Stmt
	// insertSessions[i] inserts insertSizes[i] rows of event_sessions in
	// one statement: fewer, larger statements cost much less per row than
	// one statement each (each execution has a fixed cost in database/sql
	// and the driver).
	insertSessions [len(insertSizes)]*sql.Stmt

	// Statements on read.
	startBlock    *sql.Stmt // the block that holds a sequence number
	lastBlock     *sql.Stmt
	blocks        *sql.Stmt // the blocks from a first_seq on
	sessionBlocks *sql.Stmt // the blocks of one session from a first_seq on
}

// insertSizes are the row counts of the prepared event_sessions inserts,
// largest first; the sessions of a block are split greedily.
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
		// keeps the pages the appends touch (the end of event_blocks, and
		// the event_sessions pages of the sessions in progress).
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
	prep := func(db *sql.DB, dst **sql.Stmt, what, q string) {
		if err == nil {
			if *dst, err = db.PrepareContext(ctx, q); err != nil {
				err = fmt.Errorf("preparing %s: %w", what, err)
			}
		}
	}
	prep(s.write, &s.lastSeq, "last sequence query",
		`SELECT last_seq FROM event_blocks ORDER BY first_seq DESC LIMIT 1`)
	// OR ROLLBACK: a conflict aborts the whole transaction, so SQLite needs
	// no statement journal for these inserts.
	prep(s.write, &s.insertBlock, "block insert",
		`INSERT OR ROLLBACK INTO event_blocks (first_seq, last_seq, data) VALUES (?, ?, ?)`)
	for i, n := range insertSizes {
		prep(s.write, &s.insertSessions[i], "session block insert",
			`INSERT OR ROLLBACK INTO event_sessions (session_id, first_seq) VALUES `+
				strings.TrimSuffix(strings.Repeat(`(?, ?), `, n), ", "))
	}
	prep(s.read, &s.startBlock, "block lookup",
		`SELECT first_seq FROM event_blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1`)
	prep(s.read, &s.lastBlock, "last block query",
		`SELECT data FROM event_blocks ORDER BY first_seq DESC LIMIT 1`)
	prep(s.read, &s.blocks, "block query",
		`SELECT first_seq, data FROM event_blocks
		WHERE first_seq >= ? AND last_seq > ? ORDER BY first_seq`)
	// CROSS JOIN keeps event_sessions the outer loop: its primary key
	// yields the session's blocks in order.
	prep(s.read, &s.sessionBlocks, "session block query",
		`SELECT b.first_seq, b.data FROM event_sessions s CROSS JOIN event_blocks b ON b.first_seq = s.first_seq
		WHERE s.session_id = ? AND s.first_seq >= ? AND b.last_seq > ? ORDER BY s.first_seq`)
	return err
}

// Close closes the store's connections. The last connection to close
// checkpoints the WAL into the database file.
func (s *Store) Close() error {
	var errs []error
	stmts := append(s.insertSessions[:], s.lastSeq, s.insertBlock, s.startBlock, s.lastBlock, s.blocks, s.sessionBlocks)
	for _, st := range stmts {
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

// AppendEvents appends events in one transaction, as one block (several
// past maxBlockEvents or maxBlockBytes). The first event's Seq must be one
// more than the last stored one (1 on an empty log) and each following
// event's one more than its predecessor's; otherwise nothing is written and
// an error is returned.
func (s *Store) AppendEvents(ctx context.Context, evs []store.Event) (err error) {
	if len(evs) == 0 {
		return nil
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != evs[i-1].Seq+1 {
			return fmt.Errorf("appending events: sequence number %d does not follow %d", evs[i].Seq, evs[i-1].Seq)
		}
	}
	// Encoding before the transaction keeps the writer connection for the
	// SQL alone.
	buf := blockBufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledBuf {
			blockBufs.Put(buf)
		}
	}()
	blocks := encodeBlocks(buf, evs)

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("appending events: beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	var last int64 // 0 for an empty log
	lerr := tx.StmtContext(ctx, s.lastSeq).QueryRowContext(ctx).Scan(&last)
	if lerr != nil && !errors.Is(lerr, sql.ErrNoRows) {
		return fmt.Errorf("appending events: reading last sequence number: %w", lerr)
	}
	if evs[0].Seq != last+1 {
		return fmt.Errorf("appending events: sequence number %d does not follow %d", evs[0].Seq, last)
	}
	insBlock := tx.StmtContext(ctx, s.insertBlock)
	var (
		ins  [len(insertSizes)]*sql.Stmt
		args []any
	)
	for _, b := range blocks {
		first, last := b.evs[0].Seq, b.evs[len(b.evs)-1].Seq
		if _, err := insBlock.ExecContext(ctx, first, last, b.data); err != nil {
			return fmt.Errorf("appending events %d-%d: %w", first, last, err)
		}
		sessions := b.sessions
		for i, n := range insertSizes {
			for len(sessions) >= n {
				if ins[i] == nil {
					ins[i] = tx.StmtContext(ctx, s.insertSessions[i])
				}
				args = args[:0]
				for _, id := range sessions[:n] {
					args = append(args, id, first)
				}
				if _, err := ins[i].ExecContext(ctx, args...); err != nil {
					return fmt.Errorf("appending events %d-%d: indexing sessions: %w", first, last, err)
				}
				sessions = sessions[n:]
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("appending events: committing: %w", err)
	}
	return nil
}

// encodedBlock is one row of event_blocks to insert.
type encodedBlock struct {
	evs      []store.Event
	data     []byte
	sessions []string // the distinct non-empty session ids of evs, sorted
}

// blockBufs holds the buffers AppendEvents encodes blocks into (the driver
// copies a blob when it binds it), so that a batch does not allocate and
// clear a buffer of its size each time.
var blockBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf bounds the buffers kept in blockBufs.
const maxPooledBuf = 2 * maxBlockBytes

// encodeBlocks splits evs into blocks and encodes them into *buf.
func encodeBlocks(buf *[]byte, evs []store.Event) []encodedBlock {
	var (
		blocks []encodedBlock
		ends   []int
	)
	b := (*buf)[:0]
	for len(evs) > 0 {
		n, size := 0, block.HeaderSize
		for n < len(evs) && n < maxBlockEvents {
			sz := block.MaxSize(&evs[n])
			if n > 0 && size+sz > maxBlockBytes {
				break
			}
			n, size = n+1, size+sz
		}
		b = block.Append(b, evs[:n])
		blocks = append(blocks, encodedBlock{evs: evs[:n], sessions: sessionIDs(evs[:n])})
		ends = append(ends, len(b))
		evs = evs[n:]
	}
	*buf = b
	start := 0
	for i, end := range ends {
		blocks[i].data = b[start:end:end]
		start = end
	}
	return blocks
}

// sessionIDs returns the distinct non-empty session ids of evs, sorted.
func sessionIDs(evs []store.Event) []string {
	ids := make([]string, 0, len(evs)/4+1)
	for i := range evs {
		// Events of a session mostly come in runs: skip repeats cheaply.
		if id := evs[i].SessionID; id != "" && (len(ids) == 0 || ids[len(ids)-1] != id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// LastEvent returns the newest event, or an error wrapping store.ErrNotFound
// when the log is empty.
func (s *Store) LastEvent(ctx context.Context) (store.Event, error) {
	var data []byte
	err := s.lastBlock.QueryRowContext(ctx).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Event{}, fmt.Errorf("reading last event: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("reading last event: %w", err)
	}
	r, err := block.NewReader(data)
	if err != nil {
		return store.Event{}, fmt.Errorf("reading last event: %w", err)
	}
	var e block.Raw
	for r.Next(&e) {
	}
	if err := r.Err(); err != nil {
		return store.Event{}, fmt.Errorf("reading last event: %w", err)
	}
	return r.Event(&e), nil
}

// Events calls fn for each event matching f in sequence order, stopping at
// the first error fn returns (which Events returns unwrapped). Blocks are
// read in pages (see eventPage); fn runs with no transaction open, so it may
// call the store. Events appended while the iteration runs are included if
// they are reached.
func (s *Store) Events(ctx context.Context, f store.EventFilter, fn func(store.Event) error) error {
	if f.AfterSeq == math.MaxInt64 {
		return nil
	}
	// Start at the block holding AfterSeq+1: the blocks before it end
	// before it. (last_seq > AfterSeq in the queries would skip them too,
	// but only by visiting each.)
	from := int64(math.MinInt64)
	if f.AfterSeq > 0 {
		err := s.startBlock.QueryRowContext(ctx, f.AfterSeq+1).Scan(&from)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading events after %d: %w", f.AfterSeq, err)
		}
	}
	var (
		page []store.Event
		r    block.Reader
	)
	for {
		var (
			next int64
			more bool
			err  error
		)
		page, next, more, err = s.eventPage(ctx, f, from, &r, page[:0])
		if err != nil {
			return fmt.Errorf("reading events from block %d: %w", from, err)
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
		clear(page) // let the delivered events go while the next page is read
		from = next
	}
}

// eventPage appends to page the events matching f of the blocks from first
// sequence number from on, up to the bounds of a page. It returns the first
// sequence number the next page starts from and whether there may be one.
func (s *Store) eventPage(ctx context.Context, f store.EventFilter, from int64, r *block.Reader, page []store.Event) (_ []store.Event, next int64, more bool, err error) {
	var rows *sql.Rows
	if f.SessionID != "" {
		rows, err = s.sessionBlocks.QueryContext(ctx, f.SessionID, from, f.AfterSeq)
	} else {
		rows, err = s.blocks.QueryContext(ctx, from, f.AfterSeq)
	}
	if err != nil {
		return page, 0, false, err
	}
	defer rows.Close()
	var (
		first int64
		data  sql.RawBytes // decoded before the next row, no copy needed
		read  int
		e     block.Raw
	)
	for rows.Next() {
		if err := rows.Scan(&first, &data); err != nil {
			return page, 0, false, err
		}
		if err := r.Reset(data); err != nil {
			return page, 0, false, fmt.Errorf("block %d: %w", first, err)
		}
		// Filters compare the indexes of the block's strings; a block
		// without the kind asked for has no event to decode.
		kind, session := -1, -1
		if f.Kind != "" {
			kind = r.Index(f.Kind)
		}
		if f.SessionID != "" {
			session = r.Index(f.SessionID)
		}
		if (f.Kind == "" || kind >= 0) && (f.SessionID == "" || session >= 0) {
			for r.Next(&e) {
				if e.Seq > f.AfterSeq && (f.Kind == "" || e.Kind == kind) &&
					(f.SessionID == "" || e.SessionID == session) {
					page = append(page, r.Event(&e))
				}
			}
			if err := r.Err(); err != nil {
				return page, 0, false, fmt.Errorf("block %d: %w", first, err)
			}
		}
		read += len(data)
		if (len(page) >= eventPage || read >= pageBytes) && first < math.MaxInt64 {
			return page, first + 1, true, rows.Close()
		}
	}
	return page, 0, false, rows.Err()
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
