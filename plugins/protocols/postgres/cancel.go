package postgres

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelTimeout bounds forwarding one cancel request upstream.
const cancelTimeout = 5 * time.Second

// issue registers an upstream backend and returns the gateway's key for it.
func (r *cancelRegistry) issue(t cancelTarget) (uint32, [4]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		pid, key := newCancelKey()
		if _, taken := r.m[pid]; taken || pid == 0 {
			continue
		}
		t.secret = key
		r.m[pid] = t
		return pid, key
	}
}

func (r *cancelRegistry) release(pid uint32) {
	r.mu.Lock()
	delete(r.m, pid)
	r.mu.Unlock()
}

// get returns the backend of a gateway-issued process id.
func (r *cancelRegistry) get(pid uint32) (cancelTarget, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.m[pid]
	return t, ok
}

// lookup finds the backend for a gateway-issued key, comparing the secret
// in constant time.
func (r *cancelRegistry) lookup(pid uint32, secret []byte) (cancelTarget, bool) {
	r.mu.Lock()
	t, ok := r.m[pid]
	r.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare(t.secret[:], secret) != 1 {
		return cancelTarget{}, false
	}
	return t, true
}

// handleCancel routes a CancelRequest (body after the length) to the
// upstream backend the key was issued for. Like PostgreSQL, it never
// answers the client.
func (h *Handler) handleCancel(ctx context.Context, s *clientSession, body []byte) {
	if len(body) < 12 {
		s.protocolEvent(ctx, "cancel.refused", map[string]string{"reason": "malformed cancel request"})
		return
	}
	pid := binary.BigEndian.Uint32(body[4:8])
	t, ok := h.cancels.lookup(pid, body[8:])
	if !ok {
		h.log.Warn("cancel request with a key gatewayd did not issue", "client", s.clientAddr)
		s.protocolEvent(ctx, "cancel.refused", map[string]string{"reason": "unknown cancel key", "pid": strconv.FormatUint(uint64(pid), 10)})
		return
	}
	detail := map[string]string{"target_session": t.sessionID}
	if cancelHold, ok := h.holds.Load(t.sessionID); ok {
		// The session waits for a review, not for the server.
		cancelHold.(func())()
		detail["held"] = "true"
		s.protocolEventFor(ctx, t.sessionID, "cancel", detail)
		return
	}
	err := sendCancel(ctx, t)
	if err != nil {
		h.log.Warn("forwarding cancel request", "target_session", t.sessionID, "error", err)
		detail["error"] = err.Error()
	}
	s.protocolEventFor(ctx, t.sessionID, "cancel", detail)
}

// sendCancel sends the upstream backend's own cancel key to it.
func sendCancel(ctx context.Context, t cancelTarget) error {
	ctx, cancel := context.WithTimeout(ctx, cancelTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.address)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(cancelTimeout))
	msg, err := (&pgproto3.CancelRequest{ProcessID: t.pid, SecretKey: t.key}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	// The server closes the connection once it has the request.
	var b [1]byte
	_, _ = c.Read(b[:])
	return nil
}
