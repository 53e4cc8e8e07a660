package ssh

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Output held back for masking: a line is masked whole, so that a value
// cut between two reads is still found; a partial line (a prompt) goes out
// after holdFor without more output, or once it reaches maxHold bytes.
const (
	holdFor = 30 * time.Millisecond
	maxHold = 4 << 10
)

// maskingWriter masks terminal output line by line before passing it on.
type maskingWriter struct {
	ctx  context.Context
	s    *channel
	next func([]byte) error // records and writes

	mu    sync.Mutex
	held  []byte
	timer *time.Timer
	err   error
	batch abi.Batch
}

func newMaskingWriter(ctx context.Context, s *channel, next func([]byte) error) *maskingWriter {
	w := &maskingWriter{ctx: ctx, s: s, next: next}
	w.timer = time.AfterFunc(time.Hour, w.flushHeld)
	w.timer.Stop()
	return w
}

func (w *maskingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.timer.Stop()
	w.held = append(w.held, p...)
	cut := bytes.LastIndexByte(w.held, '\n') + 1
	if cut == 0 && len(w.held) >= maxHold {
		cut = len(w.held)
	}
	if cut > 0 {
		if err := w.emit(w.held[:cut]); err != nil {
			return 0, err
		}
		w.held = append(w.held[:0], w.held[cut:]...)
	}
	if len(w.held) > 0 {
		w.timer.Reset(holdFor)
	}
	return len(p), nil
}

// flushHeld sends a partial line that waited long enough.
func (w *maskingWriter) flushHeld() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || len(w.held) == 0 {
		return
	}
	if err := w.emit(w.held); err == nil {
		w.held = w.held[:0]
	}
}

// Close sends what is held.
func (w *maskingWriter) Close() error {
	w.timer.Stop()
	w.flushHeld()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// emit masks lines (one batch row each) and passes them on.
func (w *maskingWriter) emit(p []byte) error {
	w.batch.Reset(abi.Output, []abi.Column{{Name: "output", Type: 25}})
	var lines [][]byte
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n') + 1
		if i == 0 {
			i = len(p)
		}
		lines = append(lines, p[:i])
		w.batch.Append(p[:i], false)
		p = p[i:]
	}
	resp, err := w.s.c.host.Mask(w.ctx, protocol.MaskRequest{SessionID: w.s.c.sessionID, Batch: &w.batch})
	if err != nil {
		w.err = err
		w.s.c.log.Error("masking output failed: ending the session", "error", err)
		_ = w.s.c.sconn.Close()
		return err
	}
	for _, ch := range resp.Changes {
		if !ch.Null {
			lines[ch.Row] = ch.Value
		} else {
			lines[ch.Row] = nil
		}
	}
	out := bytes.Join(lines, nil)
	if err := w.next(out); err != nil {
		w.err = err
		return err
	}
	return nil
}
