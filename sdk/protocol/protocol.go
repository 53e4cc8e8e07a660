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
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
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
	// Admit is called before a request is forwarded: it runs the
	// session's policy modules (when OpenSession said it has any) and
	// answers with a verdict. Anything but Allow means the request must
	// not go through as it is: the handler answers it with an error in its
	// protocol (Deny, Review) or ends the session (Terminate). A non-nil
	// error means the gateway cannot admit anything now (for example the
	// audit log cannot be written); the handler refuses the request too.
	Admit(ctx context.Context, req AdmitRequest) (*AdmitResponse, error)
	// Mask runs the session's masking modules on a batch of response
	// values before they reach the client. An error means the values must
	// not be sent: the handler ends the session with the error's text.
	Mask(ctx context.Context, req MaskRequest) (*MaskResponse, error)
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
	// Expires is when the credential that identified it ends (an issued
	// token, a certificate); zero for credentials that do not expire. The
	// core ends sessions at it (OpenSessionResponse.NotAfter).
	Expires time.Time
	// CredentialID names the revocable credential it signed in with (an
	// issued token's id, which its certificates share); "" for static
	// credentials. A session whose credential is revoked runs no further
	// request.
	CredentialID string
}

// AuthenticateRequest carries what a client presented.
type AuthenticateRequest struct {
	Protocol   string
	ClientAddr string
	// User is the name the client gave for itself; "" when the protocol's
	// user name means something else (SSH's names the connection) and the
	// credential alone identifies the client.
	User string
	// Password is the gateway token the client sent. Never logged.
	Password secret.Value
	// PublicKey is an SSH public key, in authorized_keys format, that the
	// client proved it holds (its signature checked).
	PublicKey []byte
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
	// Policy reports that requests go through policy modules: the handler
	// must call Admit with each request's kind and text.
	Policy bool
	// NotAfter, when set, is when the session's access ends (an approved
	// access request's grant expires): the handler ends the session then,
	// with a message in its protocol. Admit refuses requests after it.
	NotAfter time.Time
	// EndReason is what the handler tells its client when it ends the
	// session at NotAfter ("your access grant ... expired ..."); empty
	// means the handler's own words.
	EndReason string
	// Masking is the set of response frame kinds the handler must pass
	// through Mask before sending them to the client.
	Masking abi.Subscription
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
	// HostKeys are the target's pinned SSH host keys, in authorized_keys
	// or known_hosts format (SSH only).
	HostKeys []string
	// AllowForward are the destinations a client may reach through the
	// target with port forwarding, "host:port" (SSH only; see
	// config.Connection.AllowForward).
	AllowForward []string
	// AllowRemoteForward are the addresses a client may have the target
	// listen on, "host:port" (SSH only; see
	// config.Connection.AllowRemoteForward).
	AllowRemoteForward []string
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
	Kind      abi.FrameKind
	// Text is the request as the client sent it (SQL text, command line).
	Text  string
	Attrs []abi.Attr
}

// AdmitResponse is the verdict on a request.
type AdmitResponse struct {
	// Verdict is Allow, or what the handler must do instead; Reason is
	// meant for the client.
	Verdict abi.Verdict
	// Module names the module that decided, when one did.
	Module string
}

// MaskRequest is a batch of response values of a session.
type MaskRequest struct {
	SessionID string
	Batch     *abi.Batch
}

// MaskResponse lists the values to replace.
type MaskResponse struct {
	// Changes are in (row, col) order and valid until the session's next
	// Mask call.
	Changes []abi.Change
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
	// ReviewID names the approved review (see Holder) that released the
	// request, "" for requests that needed none.
	ReviewID string
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
