package api

import (
	"encoding/json"
	"time"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/store"
)

// The JSON bodies of the API (version 1). gatewayctl decodes the same types.
// Fields are only ever added; a client ignores fields it does not know.

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// Session is one session, as listed by GET /v1/sessions.
type Session struct {
	ID         string    `json:"id"`
	Protocol   string    `json:"protocol"`
	Connection string    `json:"connection"`
	Identity   string    `json:"identity"`
	Email      string    `json:"email,omitempty"`
	ClientAddr string    `json:"client_addr"`
	Started    time.Time `json:"started"`
	// Ended is absent while the session is open.
	Ended     time.Time `json:"ended,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`
	BytesIn   int64     `json:"bytes_in"`  // client to target
	BytesOut  int64     `json:"bytes_out"` // target to client
	Requests  int64     `json:"requests"`
}

// Open reports whether the session has not ended (yet).
func (s Session) Open() bool { return s.Ended.IsZero() }

// SessionList is the body of GET /v1/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// SessionDetail is the body of GET /v1/sessions/{id}.
type SessionDetail struct {
	Session Session `json:"session"`
	// Statements are the session's requests (SQL statements, commands) in
	// the order they were audited.
	Statements []Statement `json:"statements"`
}

// Statement is one request of a session, from its "request" audit event.
type Statement struct {
	Seq      int64     `json:"seq"`  // the audit event's sequence number
	Kind     string    `json:"kind"` // "query", "execute", "copy", ...
	Text     string    `json:"text"`
	Started  time.Time `json:"started"`
	Duration int64     `json:"duration_ns"`
	// Rows is the number of rows returned or affected, -1 when unknown.
	Rows int64 `json:"rows"`
	// Outcome is "ok", "error" or "interrupted" ("unknown" when the audit
	// event's data could not be decoded).
	Outcome      string `json:"outcome"`
	Tag          string `json:"tag,omitempty"`
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
}

// VerifyResult is the body of GET /v1/audit/verify: audit.VerifyResult.
type VerifyResult struct {
	// OK is true when every event chains to the one before it.
	OK bool `json:"ok"`
	// Events is the number of events examined, the broken one included.
	Events int64 `json:"events"`
	// FirstBroken is the seq of the first event that does not verify, 0
	// when OK; Reason says why.
	FirstBroken int64  `json:"first_broken,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// LastSeq and LastHash name the last event that verified.
	LastSeq  int64  `json:"last_seq"`
	LastHash string `json:"last_hash"`
}

// Whoami is the body of GET /v1/whoami.
type Whoami struct {
	Name   string   `json:"name"`
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups"`
	Admin  bool     `json:"admin"`
}

func sessionFrom(s store.Session) Session {
	return Session{
		ID:         s.ID,
		Protocol:   s.Protocol,
		Connection: s.Connection,
		Identity:   s.Identity,
		Email:      s.Email,
		ClientAddr: s.ClientAddr,
		Started:    s.Started,
		Ended:      s.Ended,
		EndReason:  s.EndReason,
		BytesIn:    s.BytesIn,
		BytesOut:   s.BytesOut,
		Requests:   s.Requests,
	}
}

// statementFrom decodes a "request" event. The error is for an event whose
// data does not decode; the statement is still returned, with outcome
// "unknown", so that one damaged event does not hide a session.
func statementFrom(ev store.Event) (Statement, error) {
	var d audit.RequestData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return Statement{Seq: ev.Seq, Started: ev.Time, Rows: -1, Outcome: "unknown"}, err
	}
	return Statement{
		Seq:          ev.Seq,
		Kind:         d.Kind,
		Text:         d.Text,
		Started:      d.Started,
		Duration:     d.Duration,
		Rows:         d.Rows,
		Outcome:      d.Outcome,
		Tag:          d.Tag,
		ErrorCode:    d.ErrorCode,
		ErrorMessage: d.ErrorMessage,
	}, nil
}

// VerifyResultOf converts what audit.Verify or audit.VerifyStream found.
func VerifyResultOf(r audit.VerifyResult) VerifyResult {
	return VerifyResult{
		OK:          r.OK,
		Events:      r.Events,
		FirstBroken: r.FirstBroken,
		Reason:      r.Reason,
		LastSeq:     r.LastSeq,
		LastHash:    r.LastHash,
	}
}
