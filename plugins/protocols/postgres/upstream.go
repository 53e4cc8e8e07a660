package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// baseDSN is parsed for every upstream connection and then overwritten
// field by field, so nothing reaches the upstream from gatewayd's own
// environment (PGPASSWORD, PGOPTIONS, ~/.pgpass, service files).
const baseDSN = "host=127.0.0.1 port=5432 user=gatewayd dbname=gatewayd sslmode=disable password=unused"

// connectUpstream connects and authenticates to the target as its real role
// with the injected credential (SCRAM-SHA-256 or md5; cleartext only inside
// TLS), then takes over the raw connection for the relay.
func connectUpstream(ctx context.Context, t protocol.Target, params map[string]string, maxMessage int) (*pgconn.HijackedConn, error) {
	host, portStr, err := net.SplitHostPort(t.Address)
	if err != nil {
		return nil, fmt.Errorf("parsing target address: %w", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("parsing target port: %w", err)
	}
	cfg, err := pgconn.ParseConfig(baseDSN)
	if err != nil {
		return nil, fmt.Errorf("building upstream config: %w", err)
	}
	cfg.Host = host
	cfg.Port = uint16(port)
	cfg.Database = t.Database
	cfg.User = t.User
	cfg.Password = t.Credential.Reveal()
	cfg.RuntimeParams = make(map[string]string, len(params))
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.AfterConnect = nil
	cfg.KerberosSrvName, cfg.KerberosSpn = "", ""
	cfg.SSLNegotiation = "postgres"
	cfg.MinProtocolVersion, cfg.MaxProtocolVersion = "3.0", "3.0"
	cfg.ChannelBinding = "prefer"
	cfg.MaxProtocolMessageBodyLen = maxMessage
	cfg.ConnectTimeout = t.DialTimeout
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	// The credential never travels in the clear: a server asking for a
	// cleartext password is refused unless the leg is encrypted.
	cfg.RequireAuth = "scram-sha-256,md5"

	mode := t.TLS.Mode
	if mode == "" {
		mode = "prefer"
	}
	switch mode {
	case "disable":
		cfg.TLSConfig = nil
	case "prefer", "require", "verify-full":
		tc, err := upstreamTLS(mode, host, t.TLS)
		if err != nil {
			return nil, err
		}
		cfg.TLSConfig = tc
		if mode == "prefer" {
			cfg.Fallbacks = []*pgconn.FallbackConfig{{Host: host, Port: uint16(port)}}
		} else {
			cfg.RequireAuth = "scram-sha-256,md5,password"
		}
	default:
		return nil, fmt.Errorf("unknown upstream tls mode %q", mode)
	}

	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting upstream: %w", err)
	}
	hj, err := conn.Hijack()
	if err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("taking over upstream connection: %w", err)
	}
	return hj, nil
}

func upstreamTLS(mode, host string, t protocol.TargetTLS) (*tls.Config, error) {
	if mode != "verify-full" {
		// Encryption without verification, as libpq's sslmode=require.
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil //nolint:gosec // documented mode
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading upstream CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
