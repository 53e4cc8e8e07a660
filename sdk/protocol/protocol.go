// Package protocol is the contract between gatewayd's core and a protocol
// handler: the plugin that speaks one wire protocol (PostgreSQL, SSH, ...) to
// clients and targets, while the core decides who may do what.
//
// A handler is handed each accepted client connection once and owns it from
// then on. It calls back into the core through Host for everything that is
// not protocol: checking a client's credentials, opening a session (access
// check, target and injected credential), auditing requests, closing it.
package protocol

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Handler serves client connections of one protocol.
type Handler interface {
	// Serve handles one client connection until it ends. It owns conn and
	// closes it before returning. It returns nil when the session ended
	// normally, including by the client hanging up.
	Serve(ctx context.Context, conn net.Conn, host Host) error
}

// Host is what the core offers a handler. Implementations are safe for
// concurrent use.
type Host interface {
	// Authenticate checks the credential a client presented for an
	// identity. It returns ErrUnauthenticated for any failure, without saying
	// whether the identity exists.
	Authenticate(ctx context.Context, req AuthenticateRequest) (*AuthenticateResponse, error)
	// OpenSession checks that the identity may use the named connection,
	// resolves the target's credential and starts a session record. It
	// returns ErrNoAccess alike for a missing and a forbidden connection.
	OpenSession(ctx context.Context, req OpenSessionRequest) (*OpenSessionResponse, error)
	// Admit is called before a request is forwarded. A non-nil error means
	// the request must not go through (for example the audit log cannot be
	// written); the handler answers it with an error in its protocol.
	Admit(ctx context.Context, req AdmitRequest) error
	// RecordRequests appends finished requests of a session to its audit
	// trail, in order. Handlers batch them where they can.
	RecordRequests(ctx context.Context, reqs []RequestRecord) error
	// RecordEvent appends one protocol event that is not a request (a
	// cancel, a refused message) to the audit trail.
	RecordEvent(ctx context.Context, ev Event) error
	// CloseSession ends a session opened by OpenSession.
	CloseSession(ctx context.Context, req CloseSessionRequest) error
}

// Errors of the Host contract. Handlers map them to their protocol's own
// error codes.
var (
	ErrUnauthenticated = errors.New("protocol: authentication failed")
	ErrNoAccess        = errors.New("protocol: no such connection or access denied")
	ErrUnavailable     = errors.New("protocol: gateway cannot serve the request")
)

// Identity is a signed-in person or service.
type Identity struct {
	Name   string
	Email  string
	Groups []string
}

// AuthenticateRequest carries what a client presented.
type AuthenticateRequest struct {
	Protocol   string
	ClientAddr string
	User       string
	// Password is the gateway token the client sent. Never logged.
	Password secret.Value
}

// AuthenticateResponse names who the client is.
type AuthenticateResponse struct {
	Identity Identity
}

// OpenSessionRequest asks to start a session of an identity on a connection.
type OpenSessionRequest struct {
	Protocol   string
	ClientAddr string
	Identity   Identity
	Connection string
	// TLS reports whether the client side is encrypted.
	TLS bool
	// Attributes are protocol details worth auditing (for example the
	// client's application_name).
	Attributes map[string]string
}

// OpenSessionResponse says where to go and with which credential.
type OpenSessionResponse struct {
	SessionID string
	Target    Target
}

// Target is the upstream end of a session.
type Target struct {
	Connection string
	Address    string // host:port
	Database   string
	User       string
	// Credential is the injected secret: a password or a private key.
	Credential secret.Value
	TLS        TargetTLS
	// DialTimeout bounds connecting and authenticating upstream.
	DialTimeout time.Duration
}

// TargetTLS says how to protect the upstream leg.
type TargetTLS struct {
	// Mode is "disable", "require" (encrypt, no verification) or
	// "verify-full" (encrypt, verify chain and host name).
	Mode       string
	CAFile     string
	ServerName string
}

// AdmitRequest describes a request about to be forwarded.
type AdmitRequest struct {
	SessionID string
	Text      string
}

// RequestRecord is one finished request of a session: a SQL statement, an
// SSH exec command.
type RequestRecord struct {
	SessionID string
	// Kind says what the request is in its protocol, e.g. "query" (simple
	// query protocol), "execute" (extended protocol), "copy".
	Kind     string
	Text     string
	Started  time.Time
	Duration time.Duration
	// Rows is the number of rows returned or affected, -1 when unknown.
	Rows int64
	// Outcome is "ok", "error" or "interrupted".
	Outcome string
	// Tag is the protocol's completion tag, e.g. "SELECT 1".
	Tag string
	// ErrorCode and ErrorMessage describe a failure in the protocol's own
	// terms (for PostgreSQL, the SQLSTATE and message).
	ErrorCode    string
	ErrorMessage string
}

// Event is a protocol event that is not a request.
type Event struct {
	Kind       string // e.g. "cancel", "cancel.refused", "protocol.error"
	SessionID  string
	ClientAddr string
	Detail     map[string]string
}

// CloseSessionRequest ends a session.
type CloseSessionRequest struct {
	SessionID string
	// Reason is why the session ended: "client closed", "upstream closed",
	// an error text without secrets.
	Reason       string
	BytesIn      int64 // client to target
	BytesOut     int64 // target to client
	RequestCount int64
}
