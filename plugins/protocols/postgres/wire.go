package postgres

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// ioBufferSize is the size of each direction's read and write buffers.
const ioBufferSize = 32 * 1024

// errMessageTooLarge reports a message longer than the configured bound.
var errMessageTooLarge = errors.New("postgres: message exceeds max_message_bytes")

// errBadLength reports a message length below the protocol minimum.
var errBadLength = errors.New("postgres: invalid message length")

// header is the type byte and body length of one protocol message.
type header struct {
	typ  byte
	size int // body length, without the 4 length bytes
}

// readHeader reads one message header and checks its length against max
// before anything is allocated.
func readHeader(r *bufio.Reader, max int) (header, error) {
	b, err := r.Peek(5)
	if err != nil {
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return header{}, io.EOF
		}
		if errors.Is(err, io.EOF) {
			return header{}, io.ErrUnexpectedEOF
		}
		return header{}, err
	}
	n := int64(int32(binary.BigEndian.Uint32(b[1:5])))
	h := header{typ: b[0]}
	if n < 4 {
		return h, fmt.Errorf("%w: %d for message type %q", errBadLength, n, b[0])
	}
	if n-4 > int64(max) {
		return h, fmt.Errorf("%w: %d bytes for message type %q, limit %d", errMessageTooLarge, n-4, b[0], max)
	}
	h.size = int(n - 4)
	_, _ = r.Discard(5)
	return h, nil
}

// readBody reads a body whose length readHeader already bounded. It reuses
// buf when it is large enough.
func readBody(r *bufio.Reader, h header, buf []byte) ([]byte, error) {
	if cap(buf) < h.size {
		buf = make([]byte, h.size)
	}
	buf = buf[:h.size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, unexpected(err)
	}
	return buf, nil
}

// writeHeader writes a message header.
func writeHeader(w *bufio.Writer, h header) error {
	var b [5]byte
	b[0] = h.typ
	binary.BigEndian.PutUint32(b[1:], uint32(h.size+4))
	_, err := w.Write(b[:])
	return err
}

// copyBody streams n body bytes from r to w through r's buffer, without
// allocating.
func copyBody(w *bufio.Writer, r *bufio.Reader, n int) error {
	for n > 0 {
		k := min(n, r.Size())
		b, err := r.Peek(k)
		if len(b) > 0 {
			if _, werr := w.Write(b); werr != nil {
				return writeSideError{werr}
			}
			_, _ = r.Discard(len(b))
			n -= len(b)
		}
		if err != nil && n > 0 {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			return unexpected(err)
		}
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Error severities and SQLSTATE codes the gateway itself answers with.
const (
	codeProtocolViolation  = "08P01"
	codeConnectionFailure  = "08006"
	codeInvalidPassword    = "28P01"
	codeInvalidAuthSpec    = "28000"
	codeAdminShutdown      = "57P01"
	codeSystemError        = "58000"
	codeFeatureUnsupported = "0A000"
	// codeInsufficientPrivilege answers requests policy refused.
	codeInsufficientPrivilege = "42501"
)

// gatewayError builds an ErrorResponse that says it comes from the gateway.
func gatewayError(severity, code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{
		Severity:            severity,
		SeverityUnlocalized: severity,
		Code:                code,
		Message:             msg,
		Routine:             "gatewayd",
	}
}

// appendMessage encodes msg onto buf.
func appendMessage(buf []byte, msg pgproto3.BackendMessage) []byte {
	out, err := msg.Encode(buf)
	if err != nil {
		// Encoding only fails for values out of the protocol's range,
		// which the gateway never builds.
		panic(fmt.Sprintf("postgres: encoding %T: %v", msg, err))
	}
	return out
}
