// Package handover moves accepted client connections from gatewayd into a
// protocol-handler plugin process: each connection's file descriptor crosses
// a Unix socket once (SCM_RIGHTS), tagged with a session handle, and from
// then on the plugin owns the socket.
//
// gatewayd listens (Listen) on a SOCK_SEQPACKET socket in a fresh directory
// only its user can enter, tells the plugin the path and a random token over
// the plugin's mTLS gRPC channel, and accepts exactly one connection, whose
// first message must be that token. Each later message is one connection:
// a version byte, a flags byte, the handle (big-endian uint64) and one
// descriptor.
package handover

import (
	"errors"
	"time"
)

const (
	// version is the first byte of every handover message.
	version = 1
	// msgLen is the length of a handover message: version, flags and
	// handle.
	msgLen = 10
	// TokenLen is the length of the token a plugin sends first.
	TokenLen = 32
	// sendTimeout bounds handing one connection over: a plugin that stops
	// taking connections cannot hold a session up.
	sendTimeout = 5 * time.Second
)

// Flags of a handed-over connection.
const (
	// HostRecords says that gatewayd's Host for the connection records
	// terminal sessions (protocol.Recorder).
	HostRecords byte = 1 << iota
)

// Errors.
var (
	ErrNoDescriptor = errors.New("handover: the connection has no file descriptor to hand over")
	ErrBadToken     = errors.New("handover: the plugin did not present the token")
	ErrMalformed    = errors.New("handover: malformed handover message")
	ErrUnsupported  = errors.New("handover: file-descriptor passing is not supported on this system")
)
