package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// ErrUnavailable is returned by a Writer once a write to the log has failed
// for good. The gateway fails closed on it: no request goes through that
// cannot be audited.
var ErrUnavailable = errors.New("audit: log unavailable")

// ErrClosed is returned by Append and AppendSync after Close.
var ErrClosed = errors.New("audit: writer closed")

// Record is one event to append. The Writer gives it its sequence number and
// hashes.
type Record struct {
	Time       time.Time // zero means now (Options.Now)
	Kind       string    // one of the Kind constants; required
	SessionID  string
	Identity   string
	Connection string
	Data       any // marshalled with encoding/json; nil is stored as null
}

// Options tune a Writer. Zero values take the defaults.
type Options struct {
	// FlushInterval is the longest a queued record waits for more records
	// before its batch is committed. Default 50ms.
	FlushInterval time.Duration
	// MaxBatch is the most records committed in one transaction. Default 512.
	MaxBatch int
	// QueueSize is how many records may wait to be committed before Append
	// blocks. Default 8192.
	QueueSize int
	// Now is the clock for records with a zero Time. Default time.Now.
	Now func() time.Time
}

// The defaults of Options.
const (
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultMaxBatch      = 512
	DefaultQueueSize     = 8192
)

// commitTimeout bounds one AppendEvents call, so that a hung store turns into
// a failed write instead of a hung gateway.
const commitTimeout = 30 * time.Second

// retryBackoff is the wait before each retry of a failed commit; when the
// last retry fails too the writer becomes unavailable. A variable so that
// tests can shorten it.
var retryBackoff = []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond}

// item is a queued record, marshalled. It travels through the queue by value,
// so enqueueing does not allocate.
type item struct {
	time       time.Time
	kind       string
	sessionID  string
	identity   string
	connection string
	data       []byte
	done       chan error // nil for Append; AppendSync waits on it
}

// Writer appends records to the audit log, chaining each to the one before.
// Appends from any number of goroutines are queued, and one goroutine commits
// them in batches (group commit): a batch is committed when it reaches
// MaxBatch records, when FlushInterval has passed since its first record, or
// at once when an AppendSync caller is waiting.
//
// Once a commit has failed (after retries) the Writer is unavailable for
// good: every later Append returns ErrUnavailable, and records that were
// queued but not committed are discarded with an error logged. A new Writer
// continues the chain from what the store holds.
type Writer struct {
	st    store.Store
	log   *slog.Logger
	opt   Options
	queue chan item

	mu        sync.RWMutex // held for reading while enqueueing; Close takes it to set closed
	closed    bool
	closeOnce sync.Once
	closing   chan struct{} // closed once no more records can be enqueued
	kick      chan struct{} // a sync waiter is queued: commit without waiting
	done      chan struct{} // closed when the run goroutine has returned

	failed atomic.Pointer[error] // ErrUnavailable wrapped with the cause

	// Owned by the run goroutine.
	lastSeq  int64
	lastHash string
	batch    []item
	syncWait bool
	evs      []store.Event
	buf      []byte
	hex      []byte
	timer    *time.Timer
}

// NewWriter starts a Writer that continues the chain of st. ctx bounds only
// the reading of the last event; the Writer runs until Close.
func NewWriter(ctx context.Context, st store.Store, log *slog.Logger, opt Options) (*Writer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = DefaultFlushInterval
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = DefaultMaxBatch
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = DefaultQueueSize
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	w := &Writer{
		st:      st,
		log:     log,
		opt:     opt,
		queue:   make(chan item, opt.QueueSize),
		closing: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		batch:   make([]item, 0, opt.MaxBatch),
		evs:     make([]store.Event, 0, opt.MaxBatch),
	}
	last, err := st.LastEvent(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("starting audit writer: reading the last event: %w", err)
	default:
		w.lastSeq, w.lastHash = last.Seq, last.Hash
		if h := Hash(last.PrevHash, last); h != last.Hash {
			// Continuing keeps the gateway auditable; Verify will point at
			// this event.
			log.Error("audit: the last stored event does not match its hash; the log was altered, run gatewayctl audit verify",
				"seq", last.Seq)
		}
	}
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	go w.run()
	return w, nil
}

// Append queues r. It returns once r is queued, not committed: a nil error
// does not mean the record is durable (see AppendSync). When the queue is
// full it blocks until there is room or ctx is done; it never drops a record.
// It returns an error wrapping ErrUnavailable once a commit has failed.
func (w *Writer) Append(ctx context.Context, r Record) error {
	it, err := w.item(r)
	if err != nil {
		return err
	}
	return w.enqueue(ctx, it)
}

// AppendSync queues r and waits until it is committed. If ctx ends first it
// returns ctx's error, and r may or may not be committed later.
func (w *Writer) AppendSync(ctx context.Context, r Record) error {
	it, err := w.item(r)
	if err != nil {
		return err
	}
	done := donePool.Get().(chan error)
	it.done = done
	if err := w.enqueue(ctx, it); err != nil {
		donePool.Put(done)
		return err
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		donePool.Put(done)
		return err
	case <-ctx.Done():
		// done is still referenced by the queued item; let it go.
		return fmt.Errorf("waiting for the audit event to commit: %w", ctx.Err())
	}
}

var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

func (w *Writer) item(r Record) (item, error) {
	if err := w.unavailable(); err != nil {
		return item{}, err
	}
	if r.Kind == "" {
		return item{}, errors.New("audit: record without a kind")
	}
	var data []byte
	if a, ok := r.Data.(jsonAppender); ok {
		data = a.appendJSON(make([]byte, 0, 256))
	} else {
		var err error
		if data, err = json.Marshal(r.Data); err != nil {
			return item{}, fmt.Errorf("marshalling %s audit data: %w", r.Kind, err)
		}
	}
	t := r.Time
	if t.IsZero() {
		t = w.opt.Now()
	}
	return item{
		time: t.UTC().Round(0), // no monotonic reading; nanosecond wall time
		// Strings are stored and exported as JSON, which only carries valid
		// UTF-8; repair them here so the exported chain verifies.
		kind:       validUTF8(r.Kind),
		sessionID:  validUTF8(r.SessionID),
		identity:   validUTF8(r.Identity),
		connection: validUTF8(r.Connection),
		data:       data,
	}, nil
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func (w *Writer) enqueue(ctx context.Context, it item) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.queue <- it:
		return nil
	default:
	}
	// The queue is full: wait (backpressure). The run goroutine keeps
	// draining, also when the writer has failed, so this cannot block
	// forever.
	select {
	case w.queue <- it:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("queueing audit event: %w", ctx.Err())
	}
}

func (w *Writer) unavailable() error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Healthy returns nil while the log is writable, and an error wrapping
// ErrUnavailable and its cause once a commit has failed.
func (w *Writer) Healthy() error { return w.unavailable() }

// Close stops accepting records, commits everything queued and stops the
// writer. It does not close the store. It returns ctx's error if ctx ends
// first (the writer keeps flushing in the background), and the Healthy error
// if the log failed.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		go func() {
			// Taking the lock waits for enqueuers already past the closed
			// check; none can enqueue after it.
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			close(w.closing)
		}()
	})
	select {
	case <-w.done:
		return w.unavailable()
	case <-ctx.Done():
		return fmt.Errorf("closing audit writer: %w", ctx.Err())
	}
}

// run is the one goroutine that commits.
func (w *Writer) run() {
	defer close(w.done)
	for {
		select {
		case it := <-w.queue:
			w.add(it)
		case <-w.closing:
			w.drain()
			return
		}
		w.gather()
		w.flush()
	}
}

// gather fills the batch. Unless the queue already holds a full batch or
// a sync waiter is in it, it first waits for FlushInterval (or a sync
// waiter's kick, or Close), so that Append never wakes this goroutine per
// record; then it takes what is queued, up to MaxBatch.
func (w *Writer) gather() {
	if !w.syncWait && len(w.batch)+len(w.queue) < w.opt.MaxBatch {
		w.timer.Reset(w.opt.FlushInterval)
		select {
		case <-w.timer.C:
		case <-w.kick:
		case <-w.closing:
		}
		w.timer.Stop()
	}
	for len(w.batch) < w.opt.MaxBatch {
		select {
		case it := <-w.queue:
			w.add(it)
		default:
			return
		}
	}
}

// drain commits everything left in the queue; no more can arrive.
func (w *Writer) drain() {
	for {
		select {
		case it := <-w.queue:
			w.add(it)
			if len(w.batch) == w.opt.MaxBatch {
				w.flush()
			}
		default:
			w.flush()
			return
		}
	}
}

func (w *Writer) add(it item) {
	w.batch = append(w.batch, it)
	if it.done != nil {
		w.syncWait = true
	}
}

// flush chains and commits the batch, then answers its sync waiters.
func (w *Writer) flush() {
	if len(w.batch) == 0 {
		return
	}
	err := w.unavailable()
	if err != nil {
		w.log.Error("audit: discarding events queued after the log failed", "events", len(w.batch))
	} else {
		err = w.commitBatch()
	}
	for i := range w.batch {
		if d := w.batch[i].done; d != nil {
			d <- err
		}
	}
	clear(w.batch) // drop the data for the GC
	w.batch = w.batch[:0]
	w.syncWait = false
}

func (w *Writer) commitBatch() error {
	evs := w.evs[:0]
	seq, prev := w.lastSeq, w.lastHash
	for i := range w.batch {
		it := &w.batch[i]
		seq++
		evs = append(evs, store.Event{
			Seq:        seq,
			Time:       it.time,
			Kind:       it.kind,
			SessionID:  it.sessionID,
			Identity:   it.identity,
			Connection: it.connection,
			Data:       it.data,
			PrevHash:   prev,
		})
		ev := &evs[len(evs)-1]
		w.hex = hashEvent(w.hex[:0], &w.buf, prev, ev)
		ev.Hash = string(w.hex)
		prev = ev.Hash
	}
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not keep a buffer grown by one huge event
	}
	err := w.commit(evs)
	clear(evs)
	w.evs = evs[:0]
	if err != nil {
		failed := fmt.Errorf("%w: %w", ErrUnavailable, err)
		w.failed.Store(&failed)
		w.log.Error("audit: the audit log is unavailable; refusing further events",
			"error", err, "first_seq", w.lastSeq+1, "events_lost", len(w.batch))
		return failed
	}
	w.lastSeq, w.lastHash = seq, prev
	return nil
}

// commit appends evs, retrying with backoff. Before a retry it checks
// whether the failed attempt committed after all (an error after COMMIT),
// so that a retry never appends the same events twice.
func (w *Writer) commit(evs []store.Event) error {
	lastEv := &evs[len(evs)-1]
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		err := w.st.AppendEvents(ctx, evs)
		cancel()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("appending audit events %d-%d: %w", evs[0].Seq, lastEv.Seq, err)
		ctx, cancel = context.WithTimeout(context.Background(), commitTimeout)
		last, lerr := w.st.LastEvent(ctx)
		cancel()
		switch {
		case lerr == nil && last.Seq == lastEv.Seq && last.Hash == lastEv.Hash:
			w.log.Warn("audit: append reported an error but committed", "error", err)
			return nil
		case lerr == nil && last.Seq != w.lastSeq:
			// Someone else wrote to the log: the chain cannot continue.
			return fmt.Errorf("%w (the log now ends at seq %d, not %d: another writer?)", err, last.Seq, w.lastSeq)
		}
		if attempt == len(retryBackoff) {
			return err
		}
		w.log.Warn("audit: append failed, retrying", "error", err, "attempt", attempt+1, "backoff", retryBackoff[attempt])
		time.Sleep(retryBackoff[attempt])
	}
}
