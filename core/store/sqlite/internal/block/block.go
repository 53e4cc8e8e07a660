// Package block is the binary encoding of a block of audit events, the unit
// in which the SQLite store keeps the audit log (one row per block, see
// package sqlite).
//
// A block is
//
//	block   = version count nstrings string... event...
//	string  = length bytes
//	event   = seq time kind session_id identity connection data prev_hash hash
//	data    = length bytes
//	hash    = 0                  the previous event's hash (not in the first event)
//	        | 1 32-bytes         64 lowercase hex digits, as 32 bytes
//	        | length+2 bytes     any other string
//
// version is the byte 1; count (at least 1), nstrings, length and the
// string indexes are unsigned varints, seq and time signed (zigzag) varints
// of encoding/binary. seq and time (Unix nanoseconds) are the differences to
// the previous event's (to 0 for the first event), wrapping around. kind,
// session_id, identity and connection are indexes into the block's strings,
// which hold each of their distinct values once, in the order of first use.
// An event's prev_hash is mostly its predecessor's hash (tag 0), and hashes
// are mostly hex sha256s (tag 1). Most of an encoded event of the audit
// writer is then its data, the other fields taking about 45 bytes: once
// events are stored in blocks, SQLite's cost is mostly per byte written.
//
// Every field round-trips exactly, whatever it holds (a time within the
// years 1678 to 2262 that int64 Unix nanoseconds cover). Decoding checks
// every count, index and length against the bytes left and never panics on
// corrupt input.
package block

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// version is the first byte of every block.
const version = 1

// minEvent is the smallest encoded event: nine one-byte varints.
const minEvent = 9

// Hash field tags.
const (
	hashPrevious = 0
	hashHex      = 1
	hashString   = 2 // + length
)

// MaxSize returns an upper bound of the bytes ev adds to a block, to split
// a batch into blocks of bounded size.
func MaxSize(ev *store.Event) int {
	return 2*binary.MaxVarintLen64 + strLen(len(ev.Kind)) + strLen(len(ev.SessionID)) + strLen(len(ev.Identity)) +
		strLen(len(ev.Connection)) + strLen(len(ev.Data)) + strLen(len(ev.PrevHash)) + 1 + strLen(len(ev.Hash)) + 1
}

// HeaderSize is an upper bound of the bytes of a block's header, not
// counting its strings (MaxSize counts them).
const HeaderSize = 1 + 2*binary.MaxVarintLen64

// Append appends the block of evs (at least one event) to dst.
func Append(dst []byte, evs []store.Event) []byte {
	// The strings, in the order of first use, and each event's indexes.
	var t table
	refs := make([]uint32, 0, 4*len(evs))
	var last [4]string
	var lastRef [4]uint32
	for i := range evs {
		ev := &evs[i]
		for f, s := range [4]string{ev.Kind, ev.SessionID, ev.Identity, ev.Connection} {
			// Neighbouring events mostly repeat a field.
			if i == 0 || s != last[f] {
				last[f], lastRef[f] = s, t.ref(s)
			}
			refs = append(refs, lastRef[f])
		}
	}

	dst = append(dst, version)
	dst = binary.AppendUvarint(dst, uint64(len(evs)))
	dst = binary.AppendUvarint(dst, uint64(len(t.strs)))
	for _, s := range t.strs {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	var seq, nanos int64
	prevHash := ""
	for i := range evs {
		ev := &evs[i]
		n := ev.Time.UnixNano()
		dst = binary.AppendVarint(dst, ev.Seq-seq)
		dst = binary.AppendVarint(dst, n-nanos)
		seq, nanos = ev.Seq, n
		for _, r := range refs[4*i : 4*i+4] {
			dst = binary.AppendUvarint(dst, uint64(r))
		}
		dst = binary.AppendUvarint(dst, uint64(len(ev.Data)))
		dst = append(dst, ev.Data...)
		dst = appendHash(dst, ev.PrevHash, prevHash, i > 0)
		dst = appendHash(dst, ev.Hash, prevHash, i > 0)
		prevHash = ev.Hash
	}
	return dst
}

// table is the strings of a block being encoded.
type table struct {
	strs  []string
	index map[string]uint32 // once there are more than a few strings
}

func (t *table) ref(s string) uint32 {
	if t.index == nil {
		for i, x := range t.strs {
			if x == s {
				return uint32(i)
			}
		}
		if len(t.strs) < 8 {
			t.strs = append(t.strs, s)
			return uint32(len(t.strs) - 1)
		}
		t.index = make(map[string]uint32, 4*len(t.strs))
		for i, x := range t.strs {
			t.index[x] = uint32(i)
		}
	}
	i, ok := t.index[s]
	if !ok {
		i = uint32(len(t.strs))
		t.index[s] = i
		t.strs = append(t.strs, s)
	}
	return i
}

func appendHash(dst []byte, h, prev string, hasPrev bool) []byte {
	switch {
	case hasPrev && h == prev:
		return append(dst, hashPrevious)
	case isHex(h):
		dst = append(dst, hashHex)
		for i := 0; i < len(h); i += 2 {
			dst = append(dst, unhex(h[i])<<4|unhex(h[i+1]))
		}
		return dst
	default:
		dst = binary.AppendUvarint(dst, uint64(len(h))+hashString)
		return append(dst, h...)
	}
}

// isHex reports whether h is a sha256 in lowercase hex, which decodes back
// to the same string.
func isHex(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := range len(h) {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// Raw is one event of a block as it is encoded. Its string fields are the
// block's strings (see Reader.Strings); Data and the hashes point into the
// block and are valid as long as the block's bytes are.
type Raw struct {
	Seq        int64
	Time       int64 // Unix nanoseconds
	Kind       int   // index into the block's strings
	SessionID  int
	Identity   int
	Connection int
	Data       []byte
	PrevHash   Hash
	Hash       Hash
}

// Hash is an encoded hash field, never a reference to the previous hash
// (Next resolves it).
type Hash struct {
	tag uint64
	b   []byte // the 32 bytes of hashHex, the string of hashString
}

// Reader reads the events of one block in order.
type Reader struct {
	strs    []string
	b       []byte // what is left to read
	left    int    // events left
	seq, t  int64  // of the previous event
	hash    Hash   // of the previous event
	started bool   // an event was read
	err     error

	// The last hash converted to a string, so that an event's prev_hash
	// and its predecessor's hash share one string.
	str string
}

// NewReader checks the header of block b and returns a reader of its events.
func NewReader(b []byte) (*Reader, error) {
	r := new(Reader)
	return r, r.Reset(b)
}

// Reset makes r read block b, as NewReader does. It reuses r's memory.
func (r *Reader) Reset(b []byte) error {
	*r = Reader{strs: r.strs[:0], str: r.str}
	if len(b) == 0 {
		return r.fail(errors.New("empty block"))
	}
	if b[0] != version {
		return r.fail(fmt.Errorf("unknown block version %d", b[0]))
	}
	b = b[1:]
	n, ok := uvarint(&b)
	switch {
	case !ok:
		return r.fail(errors.New("bad event count"))
	case n == 0:
		return r.fail(errors.New("block without events"))
	}
	nstr, ok := uvarint(&b)
	if !ok || nstr > uint64(len(b)) {
		return r.fail(errors.New("bad string count"))
	}
	for range nstr {
		s, ok := field(&b)
		if !ok {
			return r.fail(errors.New("bad string length"))
		}
		r.strs = append(r.strs, string(s))
	}
	if n > uint64(len(b)/minEvent) {
		return r.fail(fmt.Errorf("block of %d bytes cannot hold %d events", len(b), n))
	}
	r.b, r.left = b, int(n)
	return nil
}

func (r *Reader) fail(err error) error {
	r.err = fmt.Errorf("corrupt event block: %w", err)
	r.b, r.left = nil, 0
	return r.err
}

// Strings returns the block's strings, which Raw's string fields index.
// The slice is r's and is reused by Reset.
func (r *Reader) Strings() []string { return r.strs }

// Index returns the index of s in the block's strings, or -1.
func (r *Reader) Index(s string) int {
	for i, x := range r.strs {
		if x == s {
			return i
		}
	}
	return -1
}

// Len returns the number of events not read yet.
func (r *Reader) Len() int { return r.left }

// Next reads the next event into e. It returns false at the end of the
// block or on corrupt input, which Err then reports.
func (r *Reader) Next(e *Raw) bool {
	if r.left == 0 {
		return false
	}
	if err := r.next(e); err != nil {
		r.fail(fmt.Errorf("event %d of the block: %w", r.seq, err))
		return false
	}
	r.left--
	if r.left == 0 && len(r.b) != 0 {
		r.fail(fmt.Errorf("%d bytes after the last event", len(r.b)))
		return false
	}
	return true
}

func (r *Reader) next(e *Raw) error {
	b := r.b
	ds, ok1 := varint(&b)
	dt, ok2 := varint(&b)
	if !ok1 || !ok2 {
		return errors.New("bad seq or time")
	}
	e.Seq, e.Time = r.seq+ds, r.t+dt
	for _, f := range [...]*int{&e.Kind, &e.SessionID, &e.Identity, &e.Connection} {
		i, ok := uvarint(&b)
		if !ok || i >= uint64(len(r.strs)) {
			return errors.New("bad string index")
		}
		*f = int(i)
	}
	var ok bool
	if e.Data, ok = field(&b); !ok {
		return errors.New("bad data length")
	}
	for _, h := range [...]*Hash{&e.PrevHash, &e.Hash} {
		tag, ok := uvarint(&b)
		n := uint64(0)
		switch {
		case !ok:
			return errors.New("bad hash")
		case tag == hashPrevious:
			if !r.started {
				return errors.New("first event refers to a previous hash")
			}
			*h = r.hash
			continue
		case tag == hashHex:
			n = sha256Size
		default:
			n = tag - hashString
		}
		if n > uint64(len(b)) {
			return errors.New("bad hash length")
		}
		*h = Hash{tag: tag, b: b[:n:n]}
		b = b[n:]
	}
	r.b, r.seq, r.t, r.hash, r.started = b, e.Seq, e.Time, e.Hash, true
	return nil
}

const sha256Size = 32

// Err returns the error that ended Next, if any.
func (r *Reader) Err() error { return r.err }

// Event converts e, the event Next read last, to a store.Event. Its Data is
// a copy.
func (r *Reader) Event(e *Raw) store.Event {
	ev := store.Event{
		Seq:        e.Seq,
		Time:       time.Unix(0, e.Time).UTC(),
		Kind:       r.strs[e.Kind],
		SessionID:  r.strs[e.SessionID],
		Identity:   r.strs[e.Identity],
		Connection: r.strs[e.Connection],
		Data:       append(make([]byte, 0, len(e.Data)), e.Data...),
	}
	ev.PrevHash = r.hashString(e.PrevHash)
	ev.Hash = r.hashString(e.Hash)
	return ev
}

// hashString returns the string of h.
func (r *Reader) hashString(h Hash) string {
	if h.tag == hashHex {
		if !hexEqual(h.b, r.str) {
			r.str = hex.EncodeToString(h.b)
		}
	} else if string(h.b) != r.str {
		r.str = string(h.b)
	}
	return r.str
}

// hexEqual reports whether s is b in lowercase hex.
func hexEqual(b []byte, s string) bool {
	const digits = "0123456789abcdef"
	if len(s) != 2*len(b) {
		return false
	}
	for i, c := range b {
		if s[2*i] != digits[c>>4] || s[2*i+1] != digits[c&0xf] {
			return false
		}
	}
	return true
}

// Decode returns all events of block b.
func Decode(b []byte) ([]store.Event, error) {
	r, err := NewReader(b)
	if err != nil {
		return nil, err
	}
	evs := make([]store.Event, 0, r.Len())
	var e Raw
	for r.Next(&e) {
		evs = append(evs, r.Event(&e))
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return evs, nil
}

// uvarint reads an unsigned varint from the front of *b.
func uvarint(b *[]byte) (uint64, bool) {
	v, n := binary.Uvarint(*b)
	if n <= 0 {
		return 0, false
	}
	*b = (*b)[n:]
	return v, true
}

// varint reads a signed varint from the front of *b.
func varint(b *[]byte) (int64, bool) {
	v, n := binary.Varint(*b)
	if n <= 0 {
		return 0, false
	}
	*b = (*b)[n:]
	return v, true
}

// field reads a length-prefixed field from the front of *b.
func field(b *[]byte) ([]byte, bool) {
	n, ok := uvarint(b)
	if !ok || n > uint64(len(*b)) {
		return nil, false
	}
	f := (*b)[:n:n]
	*b = (*b)[n:]
	return f, true
}

func strLen(n int) int { return binary.MaxVarintLen64 + n }
