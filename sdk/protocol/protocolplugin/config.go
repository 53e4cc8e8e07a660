package protocolplugin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	gwplugin "github.com/gatewayd-access/gatewayd/sdk/plugin"
	pb "github.com/gatewayd-access/gatewayd/sdk/protocol/internal/protocolv1"
)

// DefaultCallTimeout bounds a Host call when Config.CallTimeout is zero.
const DefaultCallTimeout = 30 * time.Second

// Config is what gatewayd tells a protocol-handler plugin when it starts
// it: the settings of the listener the handler serves. gatewayd passes it to
// Open; the plugin's newHandler function receives it.
type Config struct {
	// TLS is offered to clients; nil refuses TLS. Only Certificates,
	// MinVersion and MaxVersion reach the plugin: Open refuses a
	// configuration that needs more (GetCertificate, client certificates).
	TLS *tls.Config
	// AllowCleartextPassword lets a client send its token on a connection
	// that is not encrypted.
	AllowCleartextPassword bool
	// MaxMessageBytes bounds the protocol messages the handler reads; zero
	// means the handler's default.
	MaxMessageBytes int
	// HandshakeTimeout bounds a client's handshake; zero means the
	// handler's default.
	HandshakeTimeout time.Duration
	// CallTimeout bounds each call the plugin makes into gatewayd (Host);
	// zero means DefaultCallTimeout. A call that is not answered in time
	// fails with protocol.ErrUnavailable.
	CallTimeout time.Duration
	// LogLevel is the level of the plugin's logs: "debug", "info" (the
	// default), "warn" or "error".
	LogLevel string
	// SSHHostKeys are an SSH handler's own host keys, each an OpenSSH
	// private key (PEM). The plugin's copy of the bytes is cleared once
	// its handler is built.
	SSHHostKeys [][]byte
	// SSHCiphers are the ciphers an SSH handler accepts from clients;
	// nil means the handler's default.
	SSHCiphers []string

	// Logger is set in the plugin only: JSON lines to the plugin's stderr,
	// which go-plugin hands to gatewayd, at LogLevel.
	Logger *slog.Logger
}

// encode turns c into the Configure request, without the handover socket.
func (c Config) encode() (*pb.ConfigureRequest, error) {
	req := &pb.ConfigureRequest{
		AllowCleartextPassword: c.AllowCleartextPassword,
		MaxMessageBytes:        int64(c.MaxMessageBytes),
		HandshakeTimeoutNanos:  int64(c.HandshakeTimeout),
		CallTimeoutNanos:       int64(c.CallTimeout),
		LogLevel:               c.LogLevel,
		SshHostKeys:            c.SSHHostKeys,
		SshCiphers:             c.SSHCiphers,
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return nil, err
	}
	if t := c.TLS; t != nil {
		if t.GetCertificate != nil || t.GetConfigForClient != nil || t.ClientAuth != tls.NoClientCert {
			return nil, errors.New("protocolplugin: the TLS configuration cannot be sent to a plugin: only Certificates, MinVersion and MaxVersion can")
		}
		req.TlsMinVersion, req.TlsMaxVersion = uint32(t.MinVersion), uint32(t.MaxVersion)
		for i, cert := range t.Certificates {
			key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
			if err != nil {
				return nil, fmt.Errorf("protocolplugin: encoding the key of TLS certificate %d: %w", i, err)
			}
			req.Certificates = append(req.Certificates, &pb.Certificate{Chain: cert.Certificate, PrivateKey: key})
		}
	}
	return req, nil
}

// decodeConfig is the plugin's side of encode. It clears the key bytes of
// req once they are parsed.
func decodeConfig(req *pb.ConfigureRequest, logOut io.Writer) (Config, error) {
	level, err := parseLevel(req.LogLevel)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		AllowCleartextPassword: req.AllowCleartextPassword,
		MaxMessageBytes:        int(req.MaxMessageBytes),
		HandshakeTimeout:       time.Duration(req.HandshakeTimeoutNanos),
		CallTimeout:            time.Duration(req.CallTimeoutNanos),
		LogLevel:               req.LogLevel,
		SSHHostKeys:            req.SshHostKeys,
		SSHCiphers:             req.SshCiphers,
		Logger:                 slog.New(gwplugin.NewLogHandler(logOut, level)),
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if len(req.Certificates) > 0 {
		c.TLS = &tls.Config{MinVersion: uint16(req.TlsMinVersion), MaxVersion: uint16(req.TlsMaxVersion)}
		for i, pc := range req.Certificates {
			key, err := x509.ParsePKCS8PrivateKey(pc.PrivateKey)
			clear(pc.PrivateKey)
			if err != nil {
				return Config{}, fmt.Errorf("protocolplugin: TLS certificate %d: parsing its key: %w", i, err)
			}
			if len(pc.Chain) == 0 {
				return Config{}, fmt.Errorf("protocolplugin: TLS certificate %d has no certificate", i)
			}
			leaf, err := x509.ParseCertificate(pc.Chain[0])
			if err != nil {
				return Config{}, fmt.Errorf("protocolplugin: TLS certificate %d: %w", i, err)
			}
			c.TLS.Certificates = append(c.TLS.Certificates, tls.Certificate{Certificate: pc.Chain, PrivateKey: key, Leaf: leaf})
		}
	}
	return c, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("protocolplugin: unknown log level %q", s)
}
