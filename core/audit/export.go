package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// ExportedEvent is one line of an export: a stored event as a JSON object.
// Data is the stored JSON embedded byte for byte, so the hash can be
// recomputed from the export alone.
type ExportedEvent struct {
	Seq        int64           `json:"seq"`
	Time       time.Time       `json:"time"` // RFC 3339 with nanoseconds, UTC
	Kind       string          `json:"kind"`
	SessionID  string          `json:"session_id"`
	Identity   string          `json:"identity"`
	Connection string          `json:"connection"`
	Data       json.RawMessage `json:"data"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// Event returns e as a store.Event.
func (e ExportedEvent) Event() store.Event {
	return store.Event{
		Seq:        e.Seq,
		Time:       e.Time.UTC(),
		Kind:       e.Kind,
		SessionID:  e.SessionID,
		Identity:   e.Identity,
		Connection: e.Connection,
		Data:       e.Data,
		PrevHash:   e.PrevHash,
		Hash:       e.Hash,
	}
}

// Export writes the events of st matching f to w as JSON lines, one
// ExportedEvent per line, in sequence order. Only an export without filters
// can be checked with VerifyStream.
//
// An event whose data is not compact JSON (which the Writer never stores)
// cannot be embedded unchanged; Export stops with an error naming it.
func Export(ctx context.Context, st store.Store, w io.Writer, f store.EventFilter) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	// Keep data byte for byte: with HTML escaping on, the encoder would
	// rewrite '<', '>' and '&' inside the embedded data.
	enc.SetEscapeHTML(false)
	var scratch bytes.Buffer
	err := st.Events(ctx, f, func(ev store.Event) error {
		scratch.Reset()
		// The encoder compacts a RawMessage; compact data passes unchanged.
		if err := json.Compact(&scratch, ev.Data); err != nil || !bytes.Equal(scratch.Bytes(), ev.Data) {
			return fmt.Errorf("event %d: its data is not compact JSON and cannot be exported unchanged (run gatewayctl audit verify)", ev.Seq)
		}
		return enc.Encode(ExportedEvent{
			Seq:        ev.Seq,
			Time:       ev.Time.UTC(),
			Kind:       ev.Kind,
			SessionID:  ev.SessionID,
			Identity:   ev.Identity,
			Connection: ev.Connection,
			Data:       ev.Data,
			PrevHash:   ev.PrevHash,
			Hash:       ev.Hash,
		})
	})
	if err != nil {
		return fmt.Errorf("exporting audit events: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("exporting audit events: %w", err)
	}
	return nil
}
