package config

import (
	"strings"
	"time"
)

// Config is a parsed and validated gateway.toml. Every field has its default
// filled in by Load.
type Config struct {
	// Path is the file the configuration was read from.
	Path string `toml:"-"`

	Gateway    Gateway      `toml:"gateway"`
	Listen     Listen       `toml:"listen"`
	Identity   Identity     `toml:"identity"`
	Connection []Connection `toml:"connection"`
	Policy     []Module     `toml:"policy"`
	Masking    []Module     `toml:"masking"`
	Modules    Modules      `toml:"modules"`
	Audit      Audit        `toml:"audit"`
	Secrets    Secrets      `toml:"secrets"`
	Plugin     []Plugin     `toml:"plugin"`
	Log        Log          `toml:"log"`
	// Review configures access requests and held statements (review.go).
	Review Review `toml:"review"`
}

// Gateway holds process-wide settings.
type Gateway struct {
	// DataDir holds state (SQLite), audit, recordings and keys. Relative
	// paths are relative to the configuration file. Default "./data".
	DataDir string `toml:"data_dir"`
	// AdminGroups see every session and event. Default ["admins"].
	AdminGroups []string `toml:"admin_groups"`
	// ShutdownTimeout bounds graceful shutdown. Default 10s.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// Listen holds the listeners.
type Listen struct {
	Postgres *PostgresListener `toml:"postgres"`
	SSH      *SSHListener      `toml:"ssh"`
	API      *APIListener      `toml:"api"`
}

// TLSFiles names a certificate and key. When both are empty a self-signed
// certificate is made in data_dir.
type TLSFiles struct {
	CertFile string `toml:"tls_cert_file"`
	KeyFile  string `toml:"tls_key_file"`
}

// PostgresListener is the PostgreSQL wire protocol listener.
type PostgresListener struct {
	Address string `toml:"address"` // required, host:port
	TLSFiles
	// AllowCleartextPassword lets clients send their token without TLS.
	// Default false: a client must use TLS before authenticating.
	AllowCleartextPassword bool `toml:"allow_cleartext_password"`
	// MaxMessageBytes bounds every protocol message in either direction.
	// Default 16 MiB.
	MaxMessageBytes ByteSize `toml:"max_message_bytes"`
	// HandshakeTimeout bounds TLS, startup and authentication. Default 15s.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// MaxConnections bounds concurrent client connections. Default 1000.
	MaxConnections int `toml:"max_connections"`
	// Plugin names a [[plugin]] of kind "protocol" that serves this
	// listener out of process instead of the built-in handler. Optional.
	Plugin string `toml:"plugin"`
}

// SSHListener is the SSH listener.
type SSHListener struct {
	Address string `toml:"address"` // required, host:port
	// HostKeyFile is the gateway's own SSH host key (OpenSSH private key
	// format). Default: data_dir/ssh_host_ed25519_key, made on first start.
	HostKeyFile string `toml:"host_key_file"`
	// HandshakeTimeout bounds key exchange and authentication. Default 30s.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// MaxConnections bounds concurrent client connections. Default 1000.
	MaxConnections int `toml:"max_connections"`
	// Plugin names a [[plugin]] of kind "protocol" (cmd/gatewayd-ssh, or
	// another SSH handler) that serves this listener out of process
	// instead of the built-in handler. Optional.
	Plugin string `toml:"plugin"`
	// Ciphers are the ciphers clients may use, by their SSH names.
	// Default: AES-GCM only, which AES instructions make the cheapest to
	// relay; add "aes128-ctr" or "chacha20-poly1305@openssh.com" for
	// clients without AES-GCM (OpenSSH has it since 6.2, PuTTY since
	// 0.76), at a cost in throughput.
	Ciphers []string `toml:"ciphers"`
}

// APIListener is the HTTP API for gatewayctl, /healthz and /metrics.
type APIListener struct {
	Address string `toml:"address"` // required, host:port
	TLSFiles
	// TLS serves the API over HTTPS. Default false (loopback use).
	TLS bool `toml:"tls"`
}

// Identity holds the identity sources.
type Identity struct {
	Static []StaticIdentity `toml:"static"`
	// OIDC signs people in through the company identity provider. Optional.
	OIDC *OIDC `toml:"oidc" json:",omitempty"`
}

// StaticIdentity is a service or development identity with a fixed token.
type StaticIdentity struct {
	Name   string   `toml:"name"`   // required, unique
	Email  string   `toml:"email"`  // optional
	Groups []string `toml:"groups"` // optional
	// TokenSHA256 is the hex sha256 of the identity's token. Required.
	TokenSHA256 string `toml:"token_sha256"`
	// SSHKeys are public keys (authorized_keys lines) the identity may sign
	// in with over SSH. Optional.
	SSHKeys []string `toml:"ssh_keys"`
}

// Connection is a named target.
type Connection struct {
	Name     string `toml:"name"`     // required, unique
	Protocol string `toml:"protocol"` // required: "postgres"
	Address  string `toml:"address"`  // required, host:port
	Database string `toml:"database"` // postgres: required
	User     string `toml:"user"`     // required
	// Secret references the credential, e.g. "env:APP_DB_PASSWORD" or
	// "file:/etc/gatewayd/app-db.pass". Required.
	Secret string `toml:"secret"`
	// AllowGroups lists the groups whose members may use the connection.
	// Empty means nobody.
	AllowGroups []string `toml:"allow_groups"`
	// TLS is the upstream TLS mode: "disable", "prefer", "require",
	// "verify-full". Default "prefer".
	TLS string `toml:"tls"`
	// TLSCAFile is the CA bundle for verify-full. Default: system roots.
	TLSCAFile string `toml:"tls_ca_file"`
	// TLSServerName overrides the name verified. Default: address host.
	TLSServerName string `toml:"tls_server_name"`
	// ConnectTimeout bounds dial and upstream authentication. Default 10s.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// HostKey pins an SSH target's host key ("ssh-ed25519 AAAA..."), and
	// KnownHosts names a known_hosts file of its keys instead. SSH: one of
	// them is required; there is no unverified mode.
	HostKey    string `toml:"host_key"`
	KnownHosts string `toml:"known_hosts"`
	// AllowForward lists the destinations an SSH client may reach from the
	// target with local port forwarding (ssh -L): "host:port", the host an
	// IP address, a CIDR block or a name, the port a number or "*".
	// Link-local destinations are refused whatever the list says. Default:
	// no forwarding.
	AllowForward []string `toml:"allow_forward"`
	// AllowRemoteForward lists the addresses an SSH client may have the
	// target listen on with remote port forwarding (ssh -R), connections
	// to which come back to the client: "host:port" as the client asks for
	// it, the host an IP address, a CIDR block or a name ("localhost"),
	// the port a number or "*" (which alone allows port 0, "any free
	// port"). Default: no remote forwarding.
	AllowRemoteForward []string `toml:"allow_remote_forward"`
	// Approval settings: RequireApproval, Reviewers and MinApprovals (see
	// ConnectionApproval in review.go).
	ConnectionApproval
}

// Module is one [[policy]] or [[masking]] table: a WASM module and where
// it applies.
type Module struct {
	// Module is a built-in module's name ("pii", "sqlguard") or the path of
	// a .wasm file (relative paths are relative to the configuration
	// file). Required.
	Module string `toml:"module"`
	// SHA256 pins a .wasm file's contents (hex). Required for files, refused
	// for built-ins.
	SHA256 string `toml:"sha256"`
	// Connections are globs (path.Match syntax) of the connections the
	// module applies to. Required; each must match a connection.
	Connections []string `toml:"connections"`
	// Groups, when set, limit the module to sessions of identities in one
	// of them. Default: every session.
	Groups []string `toml:"groups"`
	// Config is handed to the module, as a JSON object, when it starts.
	Config map[string]any `toml:"config"`
	// Interruptible runs the module so that a call past modules.call_timeout
	// is stopped. Default true for .wasm files and false for the built-ins,
	// which are known to terminate and run several times faster
	// uninterrupted (see docs/modules.md).
	Interruptible *bool `toml:"interruptible"`
}

// IsFile reports whether the module names a .wasm file rather than a
// built-in.
func (m *Module) IsFile() bool {
	return strings.HasSuffix(m.Module, ".wasm") || strings.ContainsRune(m.Module, '/')
}

// Modules holds the limits of the WASM module host.
type Modules struct {
	// CallTimeout bounds each call into a module. Default 100ms.
	CallTimeout Duration `toml:"call_timeout"`
	// MemoryLimit caps each module instance's memory. Default 64MiB.
	MemoryLimit ByteSize `toml:"memory_limit"`
	// MaxInstances bounds the live instances of each module. Default 256.
	MaxInstances int `toml:"max_instances"`
	// CacheDir keeps compiled modules across restarts. Relative paths are
	// relative to the configuration file. Default data_dir/wasm-cache.
	CacheDir string `toml:"cache_dir"`
}

// Audit configures the audit log writer.
type Audit struct {
	// FlushInterval is the longest an event waits before it is committed.
	// Default 50ms.
	FlushInterval Duration `toml:"flush_interval"`
	// MaxBatch is the most events committed in one transaction. Default 512.
	MaxBatch int `toml:"max_batch"`
	// QueueSize bounds events waiting to be written; a full queue slows
	// sessions down rather than dropping events. Default 8192.
	QueueSize int `toml:"queue_size"`
}

// Secrets configures secret resolution.
type Secrets struct {
	// CacheTTL is how long a resolved secret is reused. Default 30s; 0s
	// disables caching.
	CacheTTL *Duration `toml:"cache_ttl"`
}

// Plugin is one [[plugin]] table: an external plugin binary that gatewayd
// starts at boot with hashicorp/go-plugin and restarts when it crashes.
type Plugin struct {
	// Name identifies the plugin in logs, audit events and errors. For a
	// plugin of kind "secret" it is also the secret reference scheme it
	// serves (name "sops" serves secret = "sops:..."). Required, unique; a
	// scheme: a lowercase letter, then lowercase letters, digits or '-'.
	Name string `toml:"name"`
	// Kind is "secret" or "protocol". Required.
	Kind string `toml:"kind"`
	// Path is the executable. Relative paths are relative to the
	// configuration file. Required.
	Path string `toml:"path"`
	// SHA256 pins the executable's contents (hex, as sha256sum prints it).
	// Checked before every start; a mismatch refuses to run it. Required.
	SHA256 string `toml:"sha256"`
	// Args are the command-line arguments after the program name.
	Args []string `toml:"args"`
	// Env is the plugin process's environment. Nothing else of gatewayd's
	// environment is passed on except PATH and HOME (which Env may
	// override).
	Env map[string]string `toml:"env"`
	// StartTimeout bounds starting the process and its handshake. Default
	// 10s.
	StartTimeout Duration `toml:"start_timeout"`
	// CallTimeout bounds each call into the plugin. Default 10s.
	CallTimeout Duration `toml:"call_timeout"`
}

// Log configures gatewayd's own logs (JSON on stderr).
type Log struct {
	// Level is "debug", "info", "warn" or "error". Default "info".
	Level string `toml:"level"`
}

// Duration is a time.Duration written as a string: "15s", "1m30s".
type Duration struct{ time.Duration }

// ByteSize is a size in bytes, written as an integer or a string with a
// unit: 1048576, "16MiB", "512KiB".
type ByteSize int64
