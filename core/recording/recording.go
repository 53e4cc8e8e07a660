// Package recording writes and plays session recordings in asciicast v2,
// the format of asciinema (https://docs.asciinema.org/manual/asciicast/v2/):
// a JSON header line, then one JSON array per event [seconds, code, data]
// for terminal output ("o"), input ("i"), resizes ("r") and markers ("m").
// `asciinema play` and `gatewayctl replay` play the same files.
package recording

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Event codes of asciicast v2.
const (
	Output = "o"
	Input  = "i"
	Resize = "r"
	Marker = "m"
)

// Header is the first line of a recording.
type Header struct {
	Version   int               `json:"version"` // always 2
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"` // unix seconds
	Command   string            `json:"command,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// Event is one event of a recording.
type Event struct {
	Time float64 // seconds since the start
	Code string  // Output, Input, Resize or Marker
	Data string
}

// ErrClosed reports a write to a closed Writer.
var ErrClosed = errors.New("recording: closed")

// Writer appends the events of one session to its recording. It is safe for
// concurrent use (a session's output and input come from two goroutines).
// Every error is sticky: once a write fails the recording is incomplete,
// and the caller must end the session (recording fails closed).
type Writer struct {
	mu    sync.Mutex
	f     *os.File
	bw    *bufio.Writer
	start time.Time
	// Bytes of a UTF-8 sequence cut at the end of the last chunk, per
	// stream, carried to the next chunk of the same stream.
	carry map[string][]byte
	buf   []byte
	err   error
	size  int64
	max   int64
	last  float64 // the time of the last event: times never go back
}

// Path is where the recording of session id lives under dir.
func Path(dir, id string) string { return filepath.Join(dir, id+".cast") }

// Create starts the recording of session id in dir, refusing to overwrite
// one. maxBytes bounds the file (0: no bound); past it writes fail.
func Create(dir, id string, h Header, maxBytes int64) (*Writer, error) {
	if id == "" || filepath.Base(id) != id {
		return nil, fmt.Errorf("recording: invalid session id %q", id)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recording: creating %s: %w", dir, err)
	}
	f, err := os.OpenFile(Path(dir, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("recording: creating the recording: %w", err)
	}
	h.Version = 2
	now := time.Now()
	if h.Timestamp == 0 {
		h.Timestamp = now.Unix()
	}
	w := &Writer{f: f, bw: bufio.NewWriterSize(f, 32<<10), start: now, carry: map[string][]byte{}, max: maxBytes}
	line, err := json.Marshal(h)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("recording: encoding header: %w", err)
	}
	if err := w.write(append(line, '\n')); err != nil {
		_ = f.Close()
		return nil, err
	}
	return w, nil
}

// Output records terminal output.
func (w *Writer) Output(p []byte) error { return w.Write(time.Now(), Output, p) }

// Input records terminal input.
func (w *Writer) Input(p []byte) error { return w.Write(time.Now(), Input, p) }

// Resize records a terminal size change.
func (w *Writer) Resize(cols, rows int) error {
	return w.Write(time.Now(), Resize, []byte(strconv.Itoa(cols)+"x"+strconv.Itoa(rows)))
}

// Mark records a marker, such as the start of a command.
func (w *Writer) Mark(label string) error { return w.Write(time.Now(), Marker, []byte(label)) }

// Write records an event that happened at t (a time before the recording
// started counts as its start). Output and input are streams: a UTF-8
// sequence cut between two chunks is completed from the next one, and
// bytes that are not UTF-8 become U+FFFD, as asciicast requires.
func (w *Writer) Write(t time.Time, code string, p []byte) error {
	switch code {
	case Output, Input:
		return w.stream(t, code, p)
	case Resize, Marker:
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.eventLocked(t, code, string(p))
	}
	return fmt.Errorf("recording: unknown event code %q", code)
}

func (w *Writer) stream(t time.Time, code string, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	data := append(w.carry[code], p...)
	cut := incompleteTail(data)
	w.carry[code] = append(w.carry[code][:0:0], data[len(data)-cut:]...)
	data = data[:len(data)-cut]
	if len(data) == 0 {
		return nil
	}
	return w.eventLocked(t, code, string(data))
}

// incompleteTail returns how many bytes at the end of b start a UTF-8
// sequence that the bytes present do not complete.
func incompleteTail(b []byte) int {
	for n := 1; n <= 3 && n <= len(b); n++ {
		c := b[len(b)-n]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}

func (w *Writer) eventLocked(at time.Time, code, data string) error {
	if w.err != nil {
		return w.err
	}
	t := max(at.Sub(w.start).Seconds(), w.last)
	w.last = t
	w.buf = append(w.buf[:0], '[')
	w.buf = strconv.AppendFloat(w.buf, t, 'f', 6, 64)
	w.buf = append(w.buf, ", \""...)
	w.buf = append(w.buf, code...)
	w.buf = append(w.buf, "\", "...)
	enc, err := json.Marshal(data) // invalid UTF-8 becomes U+FFFD
	if err != nil {
		w.err = fmt.Errorf("recording: encoding event: %w", err)
		return w.err
	}
	w.buf = append(w.buf, enc...)
	w.buf = append(w.buf, "]\n"...)
	return w.write(w.buf)
}

func (w *Writer) write(b []byte) error {
	if w.max > 0 && w.size+int64(len(b)) > w.max {
		w.err = fmt.Errorf("recording: the recording reached its limit of %d bytes", w.max)
		return w.err
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("recording: writing: %w", err)
		return w.err
	}
	w.size += int64(len(b))
	return nil
}

// Flush writes buffered events to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("recording: writing: %w", err)
	}
	return w.err
}

// Close writes what is buffered (and any carried partial sequence, as
// U+FFFD), syncs the file and closes it.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	for code, rest := range w.carry {
		if len(rest) > 0 && w.err == nil {
			_ = w.eventLocked(time.Now(), code, string(rest))
		}
	}
	err := w.err
	if err == nil {
		if ferr := w.bw.Flush(); ferr != nil {
			err = fmt.Errorf("recording: writing: %w", ferr)
		} else if serr := w.f.Sync(); serr != nil {
			err = fmt.Errorf("recording: syncing: %w", serr)
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("recording: closing: %w", cerr)
	}
	w.f = nil
	if w.err == nil {
		w.err = ErrClosed
	}
	return err
}
