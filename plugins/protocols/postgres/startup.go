package postgres

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Startup packet codes (the first four bytes after the length).
const (
	codeCancelRequest = 80877102
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
)

// Startup packet length bounds: PostgreSQL's own MAX_STARTUP_PACKET_LENGTH.
const (
	minStartupLength = 8
	maxStartupLength = 10000
	// maxNegotiations bounds SSLRequest/GSSENCRequest rounds before the
	// startup message.
	maxNegotiations = 3
)

// allowedParams are the startup parameters passed upstream, keyed by their
// lower-case name. Everything else (options, replication, search_path, ...)
// stays at the gateway.
var allowedParams = map[string]bool{
	"application_name":   true,
	"client_encoding":    true,
	"datestyle":          true,
	"timezone":           true,
	"intervalstyle":      true,
	"extra_float_digits": true,
}

// startup is what the client asked for in its StartupMessage.
type startup struct {
	user     string
	database string
	params   map[string]string // allow-listed, passed upstream
	dropped  []string          // names of parameters not passed
}

var (
	errCancelHandled = errors.New("postgres: cancel request handled")
	errStartup       = errors.New("postgres: invalid startup")
)

// readStartupPacket reads one length-prefixed startup packet straight from
// the connection, without read-ahead: bytes a client sends after an
// SSLRequest must reach the TLS handshake, not a buffer.
func readStartupPacket(r io.Reader) ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, unexpected(err)
	}
	n := int64(int32(binary.BigEndian.Uint32(lb[:])))
	if n < minStartupLength || n > maxStartupLength {
		return nil, fmt.Errorf("%w: packet length %d", errStartup, n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, unexpected(err)
	}
	return body, nil
}

// negotiate runs the startup phase up to a StartupMessage: TLS, GSSAPI
// refusal, cancel requests.
func (s *clientSession) negotiate(ctx context.Context) (*startup, error) {
	for round := 0; ; round++ {
		body, err := readStartupPacket(s.conn)
		if err != nil {
			return nil, err
		}
		code := binary.BigEndian.Uint32(body)
		switch {
		case code == codeSSLRequest && len(body) == 4:
			if round >= maxNegotiations {
				return nil, fmt.Errorf("%w: too many negotiation requests", errStartup)
			}
			if s.tls {
				return nil, fmt.Errorf("%w: SSLRequest inside TLS", errStartup)
			}
			if s.h.opts.TLS == nil {
				if _, err := s.conn.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := s.conn.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(s.conn, s.h.opts.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			s.conn = tc
			s.tls = true
		case code == codeGSSENCRequest && len(body) == 4:
			if round >= maxNegotiations {
				return nil, fmt.Errorf("%w: too many negotiation requests", errStartup)
			}
			// GSSAPI encryption is not offered; libpq falls back to
			// SSLRequest or a plain startup.
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case code == codeCancelRequest:
			s.h.handleCancel(ctx, s, body)
			return nil, errCancelHandled
		case code>>16 == 3:
			return s.decodeStartup(body)
		default:
			s.sendFatal(codeFeatureUnsupported, fmt.Sprintf("unsupported frontend protocol %d.%d: gatewayd speaks 3.0", code>>16, code&0xffff))
			return nil, fmt.Errorf("%w: protocol code %d", errStartup, code)
		}
	}
}

// decodeStartup parses a protocol 3.x StartupMessage body. A client asking
// for a newer minor version is told the gateway speaks 3.0.
func (s *clientSession) decodeStartup(body []byte) (*startup, error) {
	version := binary.BigEndian.Uint32(body)
	b := bytes.Clone(body)
	binary.BigEndian.PutUint32(b, pgproto3.ProtocolVersion30)
	var m pgproto3.StartupMessage
	if err := m.Decode(b); err != nil {
		s.sendFatal(codeProtocolViolation, "invalid startup packet layout")
		return nil, fmt.Errorf("%w: %v", errStartup, err)
	}
	var unrecognized []string
	for k := range m.Parameters {
		if strings.HasPrefix(k, "_pq_.") {
			unrecognized = append(unrecognized, k)
			delete(m.Parameters, k)
		}
	}
	if version != pgproto3.ProtocolVersion30 || len(unrecognized) > 0 {
		slices.Sort(unrecognized)
		s.pendingOut = appendMessage(s.pendingOut, &pgproto3.NegotiateProtocolVersion{
			NewestMinorProtocol: 0,
			UnrecognizedOptions: unrecognized,
		})
	}
	st := &startup{
		user:     m.Parameters["user"],
		database: m.Parameters["database"],
		params:   map[string]string{},
	}
	if st.user == "" {
		s.sendFatal(codeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet")
		return nil, fmt.Errorf("%w: no user", errStartup)
	}
	if st.database == "" {
		st.database = st.user
	}
	if _, ok := m.Parameters["replication"]; ok {
		s.sendFatal(codeFeatureUnsupported, "replication connections are not supported through gatewayd")
		return nil, fmt.Errorf("%w: replication requested", errStartup)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Parameters)) {
		switch k {
		case "user", "database":
			continue
		}
		if allowedParams[strings.ToLower(k)] {
			st.params[k] = m.Parameters[k]
		} else {
			st.dropped = append(st.dropped, k)
		}
	}
	return st, nil
}
