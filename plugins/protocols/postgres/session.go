package postgres

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// maxPasswordBytes bounds the PasswordMessage that carries a gateway token.
// Tokens issued at login carry the identity's groups and may be up to
// 8 KiB long (core/identity bounds them there); the bound leaves room
// above that.
const maxPasswordBytes = 16 << 10

// Why a relay ended, as recorded in the session's end reason.
var (
	errClientTerminated = errors.New("client terminated the session")
	errClientClosed     = errors.New("client closed the connection")
	errUpstreamClosed   = errors.New("upstream closed the connection")
	errShutdown         = errors.New("gateway shutting down")
)

// clientSession is one client connection, from the first byte to the last.
type clientSession struct {
	h          *Handler
	host       protocol.Host
	log        *slog.Logger
	raw        net.Conn // the accepted TCP connection
	conn       net.Conn // raw, or TLS over raw
	tls        bool
	clientAddr string

	// pendingOut holds messages queued for the client before the first
	// flush (NegotiateProtocolVersion).
	pendingOut []byte

	sessionID string
	identity  protocol.Identity
	up        net.Conn
	cancelPID uint32

	cr *bufio.Reader
	cw *bufio.Writer
	// cwMu serialises writes to cw between fromUpstream (one message at a
	// time) and a held statement's notice.
	cwMu sync.Mutex
	ur   *bufio.Reader
	uw   *bufio.Writer

	// holder holds statements for approval; nil when the host cannot.
	holder protocol.Holder
	// batch is the extended-protocol batch held for approval (hold.go).
	batch *heldBatch
	// notAfter is when the session's access ends (its grant, or the
	// credential it signed in with), or zero.
	notAfter time.Time
	// endReason is what the client is told at notAfter; "" means the
	// grant's expiry.
	endReason string
	// ending is set once the relay is stopping.
	ending atomic.Bool

	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	requests atomic.Int64
	tracker  *tracker

	// masking is the set of response frames that go through the masking
	// modules; pending and scratch are the server side's batch and buffer.
	masking abi.Subscription
	pending pending
	scratch []byte
}

func (s *clientSession) run(ctx context.Context) error {
	deadline := time.Now().Add(s.h.opts.HandshakeTimeout)
	_ = s.raw.SetDeadline(deadline)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	st, err := s.negotiate(hctx)
	if errors.Is(err, errCancelHandled) {
		return nil
	}
	if err != nil {
		s.protocolEvent(ctx, "startup.refused", map[string]string{"error": err.Error()})
		return nil
	}
	s.cr = bufio.NewReaderSize(s.conn, ioBufferSize)
	s.cw = bufio.NewWriterSize(s.conn, ioBufferSize)
	if len(s.pendingOut) > 0 {
		_, _ = s.cw.Write(s.pendingOut)
		s.pendingOut = nil
	}

	if err := s.authenticate(hctx, st); err != nil {
		return nil
	}
	target, err := s.openSession(hctx, st)
	if err != nil {
		return nil
	}
	s.log = s.log.With("session", s.sessionID, "connection", target.Connection, "user", s.identity.Name)

	hj, err := connectUpstream(hctx, target, st.params, s.h.opts.MaxMessageBytes)
	if err != nil {
		s.log.Warn("upstream connect failed", "error", err)
		s.protocolEvent(ctx, "upstream.failed", map[string]string{"error": err.Error()})
		s.sendFatal(codeConnectionFailure, fmt.Sprintf("gatewayd could not connect to %q", target.Connection))
		s.closeSession(ctx, "upstream connect failed")
		return nil
	}
	s.up = hj.Conn
	s.ur = bufio.NewReaderSize(s.up, ioBufferSize)
	s.uw = bufio.NewWriterSize(s.up, ioBufferSize)

	if err := s.greet(hj.ParameterStatuses, hj.TxStatus, target, hj.PID, hj.SecretKey); err != nil {
		s.closeSession(ctx, "client write failed")
		return nil
	}
	_ = s.raw.SetDeadline(time.Time{})
	s.log.Info("session started")

	reason := s.relay(ctx)
	s.closeSession(ctx, reason)
	return nil
}

// authenticate asks for the gateway token and checks it.
func (s *clientSession) authenticate(ctx context.Context, st *startup) error {
	if !s.tls && !s.h.opts.AllowCleartextPassword {
		s.sendFatal(codeInvalidAuthSpec, "gatewayd requires an encrypted connection: connect with sslmode=require")
		s.authEvent(ctx, st.user, "no TLS")
		return errStartup
	}
	s.cw.Write(appendMessage(nil, &pgproto3.AuthenticationCleartextPassword{}))
	if err := s.cw.Flush(); err != nil {
		return err
	}
	h, err := readHeader(s.cr, maxPasswordBytes)
	if err != nil || h.typ != 'p' {
		if err == nil || !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			s.sendFatal(codeProtocolViolation, "expected password response")
		}
		s.authEvent(ctx, st.user, "no password sent")
		return errStartup
	}
	body, err := readBody(s.cr, h, nil)
	if err != nil {
		return err
	}
	pw, _, ok := cstring(body)
	clear(body)
	if !ok {
		s.sendFatal(codeProtocolViolation, "invalid password message")
		return errStartup
	}
	resp, err := s.host.Authenticate(ctx, protocol.AuthenticateRequest{
		Protocol:   ProtocolName,
		ClientAddr: s.clientAddr,
		User:       st.user,
		Password:   secret.NewValue([]byte(pw)),
	})
	if err != nil {
		if !errors.Is(err, protocol.ErrUnauthenticated) {
			s.log.Error("authenticating", "error", err)
			s.sendFatal(codeSystemError, "gatewayd cannot open a session now")
			return errStartup
		}
		// One message whether or not the identity exists.
		s.sendFatal(codeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", st.user))
		return errStartup
	}
	s.identity = resp.Identity
	return nil
}

// openSession asks the core for the connection's target.
func (s *clientSession) openSession(ctx context.Context, st *startup) (protocol.Target, error) {
	attrs := map[string]string{}
	for k, v := range st.params {
		attrs[k] = v
	}
	if len(st.dropped) > 0 {
		attrs["dropped_params"] = strings.Join(st.dropped, ",")
	}
	resp, err := s.host.OpenSession(ctx, protocol.OpenSessionRequest{
		Protocol:   ProtocolName,
		ClientAddr: s.clientAddr,
		Identity:   s.identity,
		Connection: st.database,
		TLS:        s.tls,
		Attributes: attrs,
	})
	if err != nil {
		if errors.Is(err, protocol.ErrApprovalRequired) {
			s.sendFatal(codeInvalidAuthSpec, fmt.Sprintf("connection %q requires an approved access request: run gatewayctl request %s --for DURATION --reason TEXT, and connect once a reviewer approved it", st.database, st.database))
		} else if errors.Is(err, protocol.ErrNoAccess) {
			s.sendFatal(codeInvalidAuthSpec, fmt.Sprintf("connection %q does not exist or you may not use it", st.database))
		} else {
			s.log.Error("opening session", "error", err)
			s.sendFatal(codeSystemError, "gatewayd cannot open a session now")
		}
		return protocol.Target{}, err
	}
	s.sessionID = resp.SessionID
	s.masking = resp.Masking
	s.notAfter, s.endReason = resp.NotAfter, resp.EndReason
	s.holder, _ = s.host.(protocol.Holder)
	return resp.Target, nil
}

// greet completes the client's startup: AuthenticationOk, the upstream's
// parameters, a gateway-issued cancel key and ReadyForQuery.
func (s *clientSession) greet(params map[string]string, tx byte, t protocol.Target, upPID uint32, upKey []byte) error {
	buf := appendMessage(nil, &pgproto3.AuthenticationOk{})
	for _, k := range slices.Sorted(maps.Keys(params)) {
		buf = appendMessage(buf, &pgproto3.ParameterStatus{Name: k, Value: params[k]})
	}
	pid, key := s.h.cancels.issue(cancelTarget{
		sessionID: s.sessionID,
		address:   t.Address,
		pid:       upPID,
		key:       slices.Clone(upKey),
	})
	s.cancelPID = pid
	buf = appendMessage(buf, &pgproto3.BackendKeyData{ProcessID: pid, SecretKey: key[:]})
	if tx == 0 {
		tx = 'I'
	}
	buf = appendMessage(buf, &pgproto3.ReadyForQuery{TxStatus: tx})
	if _, err := s.cw.Write(buf); err != nil {
		return err
	}
	return s.cw.Flush()
}

// relay pumps messages both ways until one side ends, and returns the
// session's end reason.
func (s *clientSession) relay(ctx context.Context) string {
	s.tracker = newTracker(s)
	errc := make(chan error, 2)
	go func() { errc <- s.fromClient(ctx) }()
	go func() { errc <- s.fromUpstream(ctx) }()

	var expired <-chan time.Time
	if !s.notAfter.IsZero() {
		t := time.NewTimer(time.Until(s.notAfter))
		defer t.Stop()
		expired = t.C
	}
	var first error
	var grantEnded bool
	running := 2
	select {
	case first = <-errc:
		running--
	case <-ctx.Done():
		first = errShutdown
	case <-expired:
		grantEnded = true
		msg := fmt.Sprintf("your access grant to this connection expired at %s; request access again with gatewayctl request",
			s.notAfter.UTC().Format(time.RFC3339))
		if s.endReason != "" {
			msg = s.endReason
		}
		first = &fatalError{code: codeAdminShutdown, msg: "terminating connection: " + msg}
	}
	// Stop the other direction: closing upstream ends fromUpstream, an
	// expired read deadline ends fromClient.
	s.ending.Store(true)
	_ = s.up.Close()
	_ = s.raw.SetReadDeadline(time.Now())
	for ; running > 0; running-- {
		<-errc
	}
	// Both directions have returned: the client writer and the tracker
	// are ours now.
	var fatal *fatalError
	switch {
	case errors.As(first, &fatal):
		s.sendFatal(fatal.code, fatal.msg)
	case errors.Is(first, errShutdown):
		s.sendFatal(codeAdminShutdown, "terminating connection: gatewayd is shutting down")
	}
	if grantEnded {
		// Stop what still runs upstream: closing the connection alone
		// leaves a long statement running on the server.
		if t, ok := s.h.cancels.get(s.cancelPID); ok {
			if err := sendCancel(context.WithoutCancel(ctx), t); err != nil {
				s.log.Warn("cancelling upstream at grant expiry", "error", err)
			}
		}
	}
	s.tracker.interruptAll()
	s.tracker.flush(context.WithoutCancel(ctx))
	return endReason(first)
}

// fatalError ends a session with an ErrorResponse to the client.
type fatalError struct {
	code, msg string
	cause     error
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.cause }

func endReason(err error) string {
	var fatal *fatalError
	switch {
	case err == nil:
		return "ended"
	case errors.Is(err, errClientTerminated), errors.Is(err, errClientClosed),
		errors.Is(err, errUpstreamClosed), errors.Is(err, errShutdown):
		return err.Error()
	case errors.As(err, &fatal):
		return fatal.msg
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return errClientClosed.Error()
	default:
		return err.Error()
	}
}

// sendFatal writes a FATAL ErrorResponse to the client and flushes.
func (s *clientSession) sendFatal(code, msg string) {
	b := appendMessage(s.pendingOut, gatewayError("FATAL", code, msg))
	s.pendingOut = nil
	_ = s.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if s.cw != nil {
		_, _ = s.cw.Write(b)
		_ = s.cw.Flush()
		return
	}
	_, _ = s.conn.Write(b)
}

func (s *clientSession) authEvent(ctx context.Context, user, reason string) {
	s.protocolEvent(ctx, "auth.refused", map[string]string{"user": user, "reason": reason})
}

func (s *clientSession) protocolEvent(ctx context.Context, kind string, detail map[string]string) {
	s.protocolEventFor(ctx, s.sessionID, kind, detail)
}

func (s *clientSession) protocolEventFor(ctx context.Context, sessionID, kind string, detail map[string]string) {
	err := s.host.RecordEvent(context.WithoutCancel(ctx), protocol.Event{
		Kind:       kind,
		SessionID:  sessionID,
		ClientAddr: s.clientAddr,
		Detail:     detail,
	})
	if err != nil {
		s.log.Error("recording protocol event", "event", kind, "error", err)
	}
}

func (s *clientSession) closeSession(ctx context.Context, reason string) {
	if s.sessionID == "" {
		return
	}
	if s.cancelPID != 0 {
		s.h.cancels.release(s.cancelPID)
	}
	err := s.host.CloseSession(context.WithoutCancel(ctx), protocol.CloseSessionRequest{
		SessionID:    s.sessionID,
		Reason:       reason,
		BytesIn:      s.bytesIn.Load(),
		BytesOut:     s.bytesOut.Load(),
		RequestCount: s.requests.Load(),
	})
	if err != nil {
		s.log.Error("closing session", "error", err)
	}
	s.log.Info("session ended", "reason", reason, "bytes_in", s.bytesIn.Load(), "bytes_out", s.bytesOut.Load(), "requests", s.requests.Load())
}

func (s *clientSession) close() {
	if s.up != nil {
		_ = s.up.Close()
	}
	_ = s.conn.Close()
	_ = s.raw.Close()
}

// newCancelKey returns a random process id and secret for a client.
func newCancelKey() (uint32, [4]byte) {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails; see crypto/rand
	var key [4]byte
	copy(key[:], b[4:])
	return binary.BigEndian.Uint32(b[:4]) &^ (1 << 31), key
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", b, false
}
