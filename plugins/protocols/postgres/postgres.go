package postgres

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// ProtocolName is the protocol this handler speaks, as written in a
// connection's protocol key.
const ProtocolName = "postgres"

// Defaults for zero Options fields.
const (
	DefaultMaxMessageBytes  = 16 << 20
	DefaultHandshakeTimeout = 15 * time.Second
)

// Options configures a Handler.
type Options struct {
	// TLS is offered to clients that send SSLRequest. Nil refuses TLS.
	TLS *tls.Config
	// AllowCleartextPassword lets a client send its token on a connection
	// that is not encrypted.
	AllowCleartextPassword bool
	// MaxMessageBytes bounds the body of every message in either direction.
	MaxMessageBytes int
	// HandshakeTimeout bounds TLS, startup and authentication, upstream
	// included.
	HandshakeTimeout time.Duration
	// Logger receives the handler's logs. Credentials are never logged.
	Logger *slog.Logger
}

// Handler serves PostgreSQL clients. It is safe for concurrent use: each
// Serve call handles one client connection.
type Handler struct {
	opts Options
	log  *slog.Logger

	cancels cancelRegistry
	// holds are the cancel functions of statements held for approval, by
	// session id: a CancelRequest withdraws the hold (hold.go).
	holds sync.Map
}

// New returns a Handler.
func New(opts Options) *Handler {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{
		opts:    opts,
		log:     opts.Logger.With("protocol", ProtocolName),
		cancels: cancelRegistry{m: make(map[uint32]cancelTarget)},
	}
}

// Serve handles one client connection until it ends.
func (h *Handler) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	s := &clientSession{
		h:          h,
		host:       host,
		raw:        conn,
		conn:       conn,
		clientAddr: conn.RemoteAddr().String(),
		log:        h.log.With("client", conn.RemoteAddr().String()),
	}
	defer s.close()
	return s.run(ctx)
}

// cancelTarget is where a gateway-issued cancel key leads.
type cancelTarget struct {
	secret    [4]byte
	sessionID string
	address   string
	pid       uint32
	key       []byte
}

// cancelRegistry maps gateway-issued backend keys to upstream backends.
type cancelRegistry struct {
	mu sync.Mutex
	m  map[uint32]cancelTarget
}

var _ protocol.Handler = (*Handler)(nil)
