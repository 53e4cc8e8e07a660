package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// fromClient forwards client messages upstream. It reads in full, within
// the bound, only the messages the gateway inspects, and streams the rest.
func (s *clientSession) fromClient(ctx context.Context) error {
	max := s.h.opts.MaxMessageBytes
	var body []byte
	for {
		if s.cr.Buffered() == 0 {
			if err := s.uw.Flush(); err != nil {
				return errUpstreamClosed
			}
		}
		h, err := readHeader(s.cr, max)
		if err != nil {
			return s.clientReadError(err)
		}
		s.bytesIn.Add(int64(h.size) + 5)
		switch h.typ {
		case 'Q', 'P', 'B', 'E', 'C', 'F':
			if body, err = readBody(s.cr, h, body); err != nil {
				return s.clientReadError(err)
			}
			if err := s.tracker.client(ctx, h.typ, body); err != nil {
				return err
			}
			if err := writeHeader(s.uw, h); err != nil {
				return errUpstreamClosed
			}
			if _, err := s.uw.Write(body); err != nil {
				return errUpstreamClosed
			}
			if cap(body) > ioBufferSize {
				body = nil // do not hold a large statement for the session's life
			}
		case 'S':
			if err := s.tracker.client(ctx, h.typ, nil); err != nil {
				return err
			}
			if err := s.forward(h); err != nil {
				return err
			}
		case 'D', 'H', 'd', 'c', 'f':
			if err := s.forward(h); err != nil {
				return err
			}
		case 'X':
			if err := s.forward(h); err != nil {
				return err
			}
			_ = s.uw.Flush()
			return errClientTerminated
		default:
			return &fatalError{code: codeProtocolViolation, msg: fmt.Sprintf("invalid frontend message type %q", h.typ)}
		}
	}
}

// forward streams one client message upstream.
func (s *clientSession) forward(h header) error {
	if err := writeHeader(s.uw, h); err != nil {
		return errUpstreamClosed
	}
	if err := copyBody(s.uw, s.cr, h.size); err != nil {
		if isWriteSide(err) {
			return errUpstreamClosed
		}
		return s.clientReadError(err)
	}
	return nil
}

func (s *clientSession) clientReadError(err error) error {
	switch {
	case errors.Is(err, errMessageTooLarge), errors.Is(err, errBadLength):
		return &fatalError{code: codeProtocolViolation, msg: err.Error(), cause: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, os.ErrDeadlineExceeded):
		return errClientClosed
	default:
		return fmt.Errorf("reading from client: %w", err)
	}
}

// fromUpstream forwards server messages to the client, reading in full
// only completions and errors, and streaming rows and COPY data.
func (s *clientSession) fromUpstream(ctx context.Context) error {
	max := s.h.opts.MaxMessageBytes
	var body []byte
	for {
		if s.ur.Buffered() == 0 {
			if err := s.cw.Flush(); err != nil {
				return errClientClosed
			}
			if err := s.tracker.flush(ctx); err != nil {
				return err
			}
		}
		h, err := readHeader(s.ur, max)
		if err != nil {
			if errors.Is(err, errMessageTooLarge) || errors.Is(err, errBadLength) {
				return &fatalError{code: codeProtocolViolation, msg: "server " + err.Error(), cause: err}
			}
			return errUpstreamClosed
		}
		s.bytesOut.Add(int64(h.size) + 5)
		switch h.typ {
		case 'C', 'E', 'Z', 'I', 's', 'V':
			if body, err = readBody(s.ur, h, body); err != nil {
				return errUpstreamClosed
			}
			if err := writeHeader(s.cw, h); err != nil {
				return errClientClosed
			}
			if _, err := s.cw.Write(body); err != nil {
				return errClientClosed
			}
			s.tracker.server(h.typ, body)
			if cap(body) > ioBufferSize {
				body = nil
			}
		case 'D':
			s.tracker.row()
			fallthrough
		default:
			if err := writeHeader(s.cw, h); err != nil {
				return errClientClosed
			}
			if err := copyBody(s.cw, s.ur, h.size); err != nil {
				if isWriteSide(err) {
					return errClientClosed
				}
				return errUpstreamClosed
			}
		}
	}
}

// writeSideError marks an error from a bufio.Writer inside copyBody.
type writeSideError struct{ error }

func (e writeSideError) Unwrap() error { return e.error }

func isWriteSide(err error) bool {
	var w writeSideError
	return errors.As(err, &w)
}
