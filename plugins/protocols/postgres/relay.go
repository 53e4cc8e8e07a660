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
			if s.batch != nil {
				if h.typ == 'Q' || h.typ == 'F' {
					return &fatalError{code: codeFeatureUnsupported, msg: "gatewayd cannot hold an extended-protocol batch for approval with a Query or FunctionCall inside it; the session was ended"}
				}
				if err := s.holdMessage(ctx, h.typ, body); err != nil {
					return err
				}
				continue
			}
			out, err := s.tracker.client(ctx, h.typ, body)
			if err != nil {
				return err
			}
			if st := s.tracker.start; st != nil {
				s.tracker.start = nil
				s.batch = &heldBatch{holdStart: *st}
				if err := s.holdMessage(ctx, h.typ, body); err != nil {
					return err
				}
				continue
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
		case 'S', 'H':
			if s.batch != nil {
				if h.size != 0 {
					return malformed("Sync or Flush")
				}
				if err := s.resolveBatch(ctx, h.typ); err != nil {
					return err
				}
				continue
			}
			if h.typ == 'S' {
				if _, err := s.tracker.client(ctx, h.typ, nil); err != nil {
					return err
				}
			}
			if err := s.forward(h); err != nil {
				return err
			}
		case 'd', 'c', 'f':
			if s.batch != nil {
				return &fatalError{code: codeFeatureUnsupported, msg: "gatewayd cannot hold COPY data for approval; the session was ended"}
			}
			if err := s.forward(h); err != nil {
				return err
			}
		case 'X':
			// A batch held for approval is dropped: it never runs.
			s.batch = nil
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
	u := upstreamState{
		maskRows:          s.masking.Has(abi.Rows),
		maskCopy:          s.masking.Has(abi.Copy),
		maskMessages:      s.masking.Has(abi.Message),
		maskNotifications: s.masking.Has(abi.Notification),
	}
	for {
		if s.ur.Buffered() == 0 {
			s.cwMu.Lock()
			err := s.flushUpstream(ctx)
			s.cwMu.Unlock()
			if err != nil {
				return err
			}
		}
		h, err := readHeader(s.ur, s.h.opts.MaxMessageBytes)
		if err != nil {
			if errors.Is(err, errMessageTooLarge) || errors.Is(err, errBadLength) {
				return &fatalError{code: codeProtocolViolation, msg: "server " + err.Error(), cause: err}
			}
			return errUpstreamClosed
		}
		s.bytesOut.Add(int64(h.size) + 5)
		// The client writer is shared with a held statement's notice
		// (hold.go), one whole message at a time.
		s.cwMu.Lock()
		err = s.upstreamMessage(ctx, h, &u)
		s.cwMu.Unlock()
		if err != nil {
			return err
		}
	}
}

// upstreamState is what fromUpstream carries from one message to the next.
type upstreamState struct {
	maskRows, maskCopy, maskMessages, maskNotifications bool
	copyOut                                             bool
	body                                                []byte
}

// flushUpstream sends what is pending to the client and hands finished
// requests to the audit trail, when the server has nothing more buffered.
func (s *clientSession) flushUpstream(ctx context.Context) error {
	if err := s.flushPending(ctx); err != nil {
		return err
	}
	if err := s.cw.Flush(); err != nil {
		return errClientClosed
	}
	return s.tracker.flush(ctx)
}

// upstreamMessage forwards one server message whose header was read.
func (s *clientSession) upstreamMessage(ctx context.Context, h header, u *upstreamState) error {
	var err error
	switch {
	case h.typ == 'D' && u.maskRows:
		s.tracker.row()
		return s.pendRow(ctx, h)
	case h.typ == 'd' && u.copyOut && u.maskCopy:
		return s.pendCopy(ctx, h)
	}
	// Anything else goes out after the rows before it.
	if err := s.flushPending(ctx); err != nil {
		return err
	}
	switch h.typ {
	case 'C', 'E', 'Z', 'I', 's', 'V', 'T', 'n', 'N', 'A', 'H':
		if u.body, err = readBody(s.ur, h, u.body); err != nil {
			return errUpstreamClosed
		}
		body := u.body
		out := body
		switch h.typ {
		case 'E', 'N':
			if u.maskMessages {
				if out, err = s.maskMessage(ctx, body); err != nil {
					return err
				}
			}
		case 'A':
			if u.maskNotifications {
				if out, err = s.maskNotification(ctx, body); err != nil {
					return err
				}
			}
		case 'T':
			s.tracker.rowDescription(body)
		case 'H':
			u.copyOut = true
			if u.maskCopy && len(body) > 0 && body[0] != 0 {
				return &fatalError{code: codeFeatureUnsupported, msg: "gatewayd cannot mask binary COPY data; the session was ended"}
			}
		case 'C', 'Z':
			u.copyOut = false
		}
		if repl := s.tracker.server(h.typ, out); repl != nil {
			out = repl
		}
		if err := s.writeMessage(h.typ, out); err != nil {
			return err
		}
		if cap(u.body) > ioBufferSize {
			u.body = nil
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
	return nil
}

// writeSideError marks an error from a bufio.Writer inside copyBody.
type writeSideError struct{ error }

func (e writeSideError) Unwrap() error { return e.error }

func isWriteSide(err error) bool {
	var w writeSideError
	return errors.As(err, &w)
}
