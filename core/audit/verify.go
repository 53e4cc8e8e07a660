package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// VerifyResult is what Verify and VerifyStream found.
type VerifyResult struct {
	// Events is the number of events examined, the broken one included.
	Events int64
	// OK is true when every event chains to the one before it.
	OK bool
	// FirstBroken is the seq of the first event that does not verify (for a
	// gap, the first event after it); 0 when OK.
	FirstBroken int64
	// Reason says why FirstBroken does not verify; "" when OK.
	Reason string
	// LastSeq and LastHash are the last event that verified: the head of the
	// chain when OK. Record them somewhere else (a ticket, a second system)
	// to be able to detect later that the tail of the log was cut off, which
	// the chain alone cannot show.
	LastSeq  int64
	LastHash string
}

// errStop ends an iteration once the chain is broken.
var errStop = errors.New("audit: stop")

// chain checks events one after another from seq 1.
type chain struct {
	res  VerifyResult
	buf  []byte
	hash []byte
}

// next checks ev; it returns false once the chain is broken.
func (c *chain) next(ev *store.Event) bool {
	c.res.Events++
	want := c.res.LastSeq + 1
	switch {
	case ev.Seq > want:
		c.broken(ev.Seq, fmt.Sprintf("sequence gap: expected seq %d, found %d: events %d to %d were removed or moved", want, ev.Seq, want, ev.Seq-1))
	case ev.Seq != want:
		c.broken(ev.Seq, fmt.Sprintf("sequence out of order: expected seq %d, found %d: events were reordered or duplicated", want, ev.Seq))
	case ev.PrevHash != c.res.LastHash:
		c.broken(ev.Seq, fmt.Sprintf("prev_hash mismatch: it is %q, the hash of event %d is %q: an event before it was removed, reordered or rewritten", ev.PrevHash, c.res.LastSeq, c.res.LastHash))
	default:
		c.hash = hashEvent(c.hash[:0], &c.buf, c.res.LastHash, ev)
		if string(c.hash) != ev.Hash {
			c.broken(ev.Seq, fmt.Sprintf("hash mismatch: stored %q, computed %q: the event was edited", ev.Hash, c.hash))
			break
		}
		c.res.LastSeq, c.res.LastHash = ev.Seq, ev.Hash
		return true
	}
	return false
}

func (c *chain) broken(seq int64, reason string) {
	c.res.FirstBroken, c.res.Reason = seq, reason
}

func (c *chain) result() VerifyResult {
	c.res.OK = c.res.FirstBroken == 0
	return c.res
}

// Verify recomputes the chain of st from seq 1 and reports the first event
// that does not verify. A broken chain is a result, not an error; the error
// is for failing to read the log.
func Verify(ctx context.Context, st store.Store) (VerifyResult, error) {
	var c chain
	err := st.Events(ctx, store.EventFilter{}, func(ev store.Event) error {
		if !c.next(&ev) {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return c.result(), fmt.Errorf("verifying audit log: %w", err)
	}
	return c.result(), nil
}

// MaxExportLine bounds one line of an export read by VerifyStream.
const MaxExportLine = 16 << 20

// VerifyStream verifies an export written by Export without filters: JSON
// lines starting at seq 1. A line that does not decode breaks the chain at
// the seq expected there; a line longer than MaxExportLine or a failing
// reader is an error.
func VerifyStream(r io.Reader) (VerifyResult, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxExportLine)
	var c chain
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var e ExportedEvent
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			c.res.Events++
			c.broken(c.res.LastSeq+1, fmt.Sprintf("line %d is not an exported event: %v", line, err))
			return c.result(), nil
		}
		if dec.More() {
			c.res.Events++
			c.broken(c.res.LastSeq+1, fmt.Sprintf("line %d has data after the event", line))
			return c.result(), nil
		}
		if c.res.Events == 0 && e.Seq != 1 {
			c.res.Events++
			c.broken(e.Seq, fmt.Sprintf("the export starts at seq %d, not 1: it is not a full export, or its head was removed", e.Seq))
			return c.result(), nil
		}
		ev := e.Event()
		if !c.next(&ev) {
			return c.result(), nil
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return c.result(), fmt.Errorf("verifying audit export: line %d is longer than %d bytes", line+1, MaxExportLine)
		}
		return c.result(), fmt.Errorf("verifying audit export: reading line %d: %w", line+1, err)
	}
	return c.result(), nil
}
