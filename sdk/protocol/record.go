package protocol

import (
	"context"
	"time"
)

// Recorder is implemented by a Host that records terminal sessions (the
// core does). A handler of an interactive protocol checks for it with a type
// assertion; it joins Host once the external plugin transport carries it.
type Recorder interface {
	// Record appends events to a session's recording. The first call of a
	// session carries Start. An error means the recording cannot be kept:
	// the handler must end the session (recording fails closed).
	Record(ctx context.Context, req RecordRequest) error
}

// RecordRequest is a batch of recording events of one session.
type RecordRequest struct {
	SessionID string
	// Start, on the first call, describes the terminal.
	Start *RecordingStart
	// Events are in order.
	Events []RecordEvent
	// End closes the recording.
	End bool
}

// RecordingStart describes a recorded terminal.
type RecordingStart struct {
	Width, Height int
	Term          string // the client's TERM
	Command       string // the command of an exec, "" for a shell
}

// Kinds of recording events, as in asciicast v2.
const (
	RecordOutput byte = 'o'
	RecordInput  byte = 'i'
	RecordResize byte = 'r'
	RecordMarker byte = 'm'
)

// RecordEvent is one recording event.
type RecordEvent struct {
	Time time.Time
	Kind byte
	// Data is the bytes of output or input, "COLSxROWS" for a resize, a
	// label for a marker.
	Data []byte
}
