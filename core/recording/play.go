package recording

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// maxLine bounds one line of a recording when reading it.
const maxLine = 16 << 20

// Reader reads a recording.
type Reader struct {
	s      *bufio.Scanner
	Header Header
	line   int
}

// NewReader reads the header of the recording in r.
func NewReader(r io.Reader) (*Reader, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), maxLine)
	rd := &Reader{s: s}
	if !s.Scan() {
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("recording: reading header: %w", err)
		}
		return nil, fmt.Errorf("recording: empty recording")
	}
	rd.line = 1
	if err := json.Unmarshal(s.Bytes(), &rd.Header); err != nil {
		return nil, fmt.Errorf("recording: line 1: not an asciicast header: %w", err)
	}
	if rd.Header.Version != 2 {
		return nil, fmt.Errorf("recording: asciicast version %d, want 2", rd.Header.Version)
	}
	return rd, nil
}

// Next returns the next event, or io.EOF after the last.
func (r *Reader) Next() (Event, error) {
	for r.s.Scan() {
		r.line++
		b := r.s.Bytes()
		if len(b) == 0 {
			continue
		}
		var raw [3]json.RawMessage
		var ev Event
		if err := json.Unmarshal(b, &raw); err != nil {
			return ev, fmt.Errorf("recording: line %d: %w", r.line, err)
		}
		if err := json.Unmarshal(raw[0], &ev.Time); err != nil {
			return ev, fmt.Errorf("recording: line %d: time: %w", r.line, err)
		}
		if err := json.Unmarshal(raw[1], &ev.Code); err != nil {
			return ev, fmt.Errorf("recording: line %d: code: %w", r.line, err)
		}
		if err := json.Unmarshal(raw[2], &ev.Data); err != nil {
			return ev, fmt.Errorf("recording: line %d: data: %w", r.line, err)
		}
		return ev, nil
	}
	if err := r.s.Err(); err != nil {
		return Event{}, fmt.Errorf("recording: line %d: %w", r.line+1, err)
	}
	return Event{}, io.EOF
}

// PlayOptions control Play.
type PlayOptions struct {
	// Speed multiplies playback speed; 0 means 1.
	Speed float64
	// IdleLimit caps each pause between events (after Speed); 0: none.
	IdleLimit time.Duration
	// Sleep waits; nil means a timer that ctx cancels. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Play writes the output events of the recording in r to w with their
// timing, until the end or ctx is done.
func Play(ctx context.Context, w io.Writer, r io.Reader, o PlayOptions) error {
	rd, err := NewReader(r)
	if err != nil {
		return err
	}
	speed := o.Speed
	if speed <= 0 {
		speed = 1
	}
	sleep := o.Sleep
	if sleep == nil {
		sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	last := 0.0
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Code != Output {
			continue
		}
		wait := time.Duration((ev.Time - last) / speed * float64(time.Second))
		last = ev.Time
		if o.IdleLimit > 0 && wait > o.IdleLimit {
			wait = o.IdleLimit
		}
		if wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
		if _, err := io.WriteString(w, ev.Data); err != nil {
			return fmt.Errorf("recording: writing output: %w", err)
		}
	}
}
