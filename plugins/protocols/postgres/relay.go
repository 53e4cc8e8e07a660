package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
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
		case 'Q', 'P', 'B', 'E', 'C', 'F', 'D':
			if body, err = readBody(s.cr, h, body); err != nil {
				return s.clientReadError(err)
			}
			out, err := s.tracker.client(ctx, h.typ, body)
			if err != nil {
				return err
			}
			if out == nil {
				out = body
			}
			if err := writeHeader(s.uw, header{typ: h.typ, size: len(out)}); err != nil {
				return errUpstreamClosed
			}
			if _, err := s.uw.Write(out); err != nil {
				return errUpstreamClosed
			}
			if cap(body) > ioBufferSize {
				body = nil // do not hold a large statement for the session's life
			}
		case 'S':
			if _, err := s.tracker.client(ctx, h.typ, nil); err != nil {
				return err
			}
			if err := s.forward(h); err != nil {
				return err
			}
		case 'H', 'd', 'c', 'f':
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
// only completions, errors and descriptions, and streaming rows and COPY
// data, except on connections with masking, where rows, COPY data, errors,
// notices and notifications go through the masking modules first, in
// batches.
func (s *clientSession) fromUpstream(ctx context.Context) error {
	max := s.h.opts.MaxMessageBytes
	maskRows := s.masking.Has(abi.Rows)
	maskCopy := s.masking.Has(abi.Copy)
	maskMessages := s.masking.Has(abi.Message)
	maskNotifications := s.masking.Has(abi.Notification)
	copyOut := false
	var body []byte
	for {
		if s.ur.Buffered() == 0 {
			if err := s.flushPending(ctx); err != nil {
				return err
			}
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
		switch {
		case h.typ == 'D' && maskRows:
			s.tracker.row()
			if err := s.pendRow(ctx, h); err != nil {
				return err
			}
			continue
		case h.typ == 'd' && copyOut && maskCopy:
			if err := s.pendCopy(ctx, h); err != nil {
				return err
			}
			continue
		}
		// Anything else goes out after the rows before it.
		if err := s.flushPending(ctx); err != nil {
			return err
		}
		switch h.typ {
		case 'C', 'E', 'Z', 'I', 's', 'V', 'T', 'n', 'N', 'A', 'H':
			if body, err = readBody(s.ur, h, body); err != nil {
				return errUpstreamClosed
			}
			out := body
			switch h.typ {
			case 'E', 'N':
				if maskMessages {
					if out, err = s.maskMessage(ctx, body); err != nil {
						return err
					}
				}
			case 'A':
				if maskNotifications {
					if out, err = s.maskNotification(ctx, body); err != nil {
						return err
					}
				}
			case 'T':
				s.tracker.rowDescription(body)
			case 'H':
				copyOut = true
				if maskCopy && len(body) > 0 && body[0] != 0 {
					return &fatalError{code: codeFeatureUnsupported, msg: "gatewayd cannot mask binary COPY data; the session was ended"}
				}
			case 'C', 'Z':
				copyOut = false
			}
			if repl := s.tracker.server(h.typ, out); repl != nil {
				out = repl
			}
			if err := s.writeMessage(h.typ, out); err != nil {
				return err
			}
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
