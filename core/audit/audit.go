// Package audit writes gatewayd's tamper-evident audit log: append-only
// events, each carrying the sha256 of its predecessor, so that editing,
// removing or reordering any stored event breaks the chain at that point.
package audit

import "time"

// Event kinds. Every authentication, session start and end and request is
// an event.
const (
	KindAuthOK        = "auth.ok"
	KindAuthFailed    = "auth.failed"
	KindAccessDenied  = "access.denied"
	KindSessionStart  = "session.start"
	KindSessionEnd    = "session.end"
	KindRequest       = "request"
	KindProtocol      = "protocol" // cancel requests, refused messages, ...
	KindUpstreamFail  = "upstream.failed"
	KindPolicy        = "policy"         // a request a policy module did not allow
	KindModuleFault   = "module.fault"   // a module that trapped, timed out or answered nonsense
	KindPluginStart   = "plugin.start"   // an external plugin started at boot
	KindPluginCrash   = "plugin.crash"   // an external plugin's process died or stopped answering
	KindPluginRestart = "plugin.restart" // an attempt to start a crashed plugin again
)

// The Data payloads of the event kinds, as stored (JSON). Fields that do not
// apply are omitted.

// AuthData is the payload of auth.ok and auth.failed.
type AuthData struct {
	Protocol   string `json:"protocol"`
	ClientAddr string `json:"client_addr"`
	User       string `json:"user"`             // the name the client presented
	Method     string `json:"method,omitempty"` // "token" or "publickey"
	Reason     string `json:"reason,omitempty"` // why it failed; never a credential
}

// AccessData is the payload of access.denied.
type AccessData struct {
	Protocol   string `json:"protocol"`
	ClientAddr string `json:"client_addr"`
	Reason     string `json:"reason"`
}

// SessionStartData is the payload of session.start.
type SessionStartData struct {
	Protocol   string            `json:"protocol"`
	ClientAddr string            `json:"client_addr"`
	Email      string            `json:"email,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	TLS        bool              `json:"tls"`
	Target     string            `json:"target_user,omitempty"` // the upstream role
	Attributes map[string]string `json:"attributes,omitempty"`
	// GrantID is the approved access request that let the session start
	// (connections with require_approval); GrantUntil is when it ends.
	GrantID    string    `json:"grant_id,omitempty"`
	GrantUntil time.Time `json:"grant_until,omitzero"`
}

// SessionEndData is the payload of session.end.
type SessionEndData struct {
	Reason   string `json:"reason"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
	Requests int64  `json:"requests"`
	Duration int64  `json:"duration_ns"`
}

// RequestData is the payload of request: one statement or command.
type RequestData struct {
	Kind         string    `json:"kind"` // "query", "execute", ...
	Text         string    `json:"text"`
	Started      time.Time `json:"started"`
	Duration     int64     `json:"duration_ns"`
	Rows         int64     `json:"rows"`
	Outcome      string    `json:"outcome"` // "ok", "error", "interrupted"
	Tag          string    `json:"tag,omitempty"`
	ErrorCode    string    `json:"error_code,omitempty"`
	ErrorMessage string    `json:"error_message,omitempty"`
	// ReviewID names the approved review that released the request.
	ReviewID string `json:"review_id,omitempty"`
}

// ProtocolData is the payload of protocol and upstream.failed events.
type ProtocolData struct {
	Event      string            `json:"event"`
	ClientAddr string            `json:"client_addr,omitempty"`
	Detail     map[string]string `json:"detail,omitempty"`
}

// PolicyData is the payload of policy: a verdict other than allow.
type PolicyData struct {
	Module    string   `json:"module"`
	Verdict   string   `json:"verdict"` // "deny", "review", "terminate"
	Reason    string   `json:"reason"`
	Reviewers []string `json:"reviewers,omitempty"`
	Request   string   `json:"request"` // the frame kind, e.g. "sql.query"
	Text      string   `json:"text"`
}

// ModuleFaultData is the payload of module.fault.
type ModuleFaultData struct {
	Module string `json:"module"`
	SHA256 string `json:"sha256"`
	Fault  string `json:"fault"` // "trap", "timeout", "memory", "exit", "malformed"
	Detail string `json:"detail"`
	Frame  string `json:"frame"` // the frame kind being handled
	// Effect is what the gateway did: "request denied" or "session ended".
	Effect string `json:"effect"`
	Text   string `json:"text,omitempty"` // the request, for request frames
}

// PluginStartData is the payload of plugin.start.
type PluginStartData struct {
	Plugin  string `json:"plugin"`
	Kind    string `json:"kind"` // "secret" or "protocol"
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	PID     int    `json:"pid"`
	Version int    `json:"version"` // the protocol version negotiated
	Took    int64  `json:"took_ns"`
}

// PluginCrashData is the payload of plugin.crash.
type PluginCrashData struct {
	Plugin string `json:"plugin"`
	Kind   string `json:"kind"`
	PID    int    `json:"pid"`
	// Reason is how the crash was noticed: the process's exit ("exit
	// status 2", "signal: killed") or a failed health check.
	Reason string `json:"reason"`
	Uptime int64  `json:"uptime_ns"`
}

// PluginRestartData is the payload of plugin.restart: one attempt to start
// a crashed plugin again.
type PluginRestartData struct {
	Plugin  string `json:"plugin"`
	Kind    string `json:"kind"`
	Attempt int    `json:"attempt"` // 1 for the first attempt after a crash
	Backoff int64  `json:"backoff_ns"`
	Outcome string `json:"outcome"`       // "ok" or "failed"
	PID     int    `json:"pid,omitempty"` // of the new process
	Error   string `json:"error,omitempty"`
}
