// Package audit writes gatewayd's tamper-evident audit log: append-only
// events, each carrying the sha256 of its predecessor, so that editing,
// removing or reordering any stored event breaks the chain at that point.
package audit

// Event kinds. Every authentication, session start and end and request is
// an event.
const (
	KindAuthOK       = "auth.ok"
	KindAuthFailed   = "auth.failed"
	KindAccessDenied = "access.denied"
	KindSessionStart = "session.start"
	KindSessionEnd   = "session.end"
	KindRequest      = "request"
	KindProtocol     = "protocol" // cancel requests, refused messages, ...
	KindUpstreamFail = "upstream.failed"
)
