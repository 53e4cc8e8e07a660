package config

import (
	"errors"
	"fmt"
	"golang.org/x/crypto/ssh"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults, as documented on the fields in types.go and in
// docs/configuration.md.
const (
	DefaultDataDir             = "./data"
	DefaultShutdownTimeout     = 10 * time.Second
	DefaultMaxMessageBytes     = 16 * MiB
	DefaultHandshakeTimeout    = 15 * time.Second
	DefaultMaxConnections      = 1000
	DefaultConnectionTLS       = "prefer"
	DefaultConnectTimeout      = 10 * time.Second
	DefaultFlushInterval       = 50 * time.Millisecond
	DefaultMaxBatch            = 512
	DefaultQueueSize           = 8192
	DefaultCacheTTL            = 30 * time.Second
	DefaultLogLevel            = "info"
	DefaultSSHHandshakeTimeout = 30 * time.Second
	DefaultCallTimeout         = 100 * time.Millisecond
	DefaultMemoryLimit         = 64 * MiB
	DefaultMaxInstances        = 256
	DefaultPluginTimeout       = 10 * time.Second // start_timeout and call_timeout
)

// DefaultSSHCiphers are the ciphers the SSH listener accepts by default.
var DefaultSSHCiphers = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}

// Bounds of modules.memory_limit.
const (
	minMemoryLimit = 4 * MiB
	maxMemoryLimit = 4 * GiB
)

// DefaultAdminGroups is the default of gateway.admin_groups.
func DefaultAdminGroups() []string { return []string{"admins"} }

// Limits of listen.postgres.max_message_bytes: below the lower one a
// startup message may not fit; the upper one is PostgreSQL's own.
const (
	minMessageBytes = 16 * KiB
	maxMessageBytes = 1 * GiB
)

// TLS modes of a connection's upstream.
var tlsModes = []string{"disable", "prefer", "require", "verify-full"}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// SlogLevel returns the level as a slog.Level (info for an unknown one;
// Load refuses those).
func (l Log) SlogLevel() slog.Level { return logLevels[l.Level] }

// protocols maps each protocol a connection may use to whether its listener
// is configured.
var protocols = map[string]func(*Config) bool{
	"postgres": func(c *Config) bool { return c.Listen.Postgres != nil },
	"ssh":      func(c *Config) bool { return c.Listen.SSH != nil },
}

var (
	// A connection name is what a client asks for (PostgreSQL's "database").
	connectionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	// A secret reference is "scheme:rest".
	referenceScheme = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	hexSHA256       = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	envName         = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Plugin kinds (sdk/plugin.KindSecret and KindProtocol).
var pluginKinds = []string{"secret", "protocol"}

// scope is a table being checked: its key path and the prefix of messages
// about it (empty for a plain table, `connection[2] ("app-db"): ` for an
// element of an array of tables).
type scope struct {
	path   string
	prefix string
}

func element(array string, i int, name string) scope {
	p := fmt.Sprintf("%s[%d]", array, i+1)
	if name != "" {
		p += fmt.Sprintf(" (%q)", name)
	}
	return scope{path: indexKey(array, i), prefix: p + ": "}
}

// key returns the path of key k in s and the way messages name it.
func (s scope) key(k string) (path, name string) {
	path = joinKey(s.path, k)
	if s.prefix == "" {
		return path, path
	}
	return path, k
}

// missing records that required key k of s is absent.
func (d *decoder) missing(s scope, k string) {
	_, name := s.key(k)
	d.errAt(s.path, "%smissing required key %q", s.prefix, name)
}

// invalid records a bad value of key k of s.
func (d *decoder) invalid(s scope, k, format string, args ...any) {
	path, name := s.key(k)
	d.bad[path] = true
	d.errAt(path, "%skey %q: %s", s.prefix, name, fmt.Sprintf(format, args...))
}

// given reports whether key k of s is in the file with an acceptable type.
func (d *decoder) given(s scope, k string) bool {
	path, _ := s.key(k)
	return d.usable(path)
}

// absent reports whether key k of s is not in the file at all.
func (d *decoder) absent(s scope, k string) bool {
	path, _ := s.key(k)
	return !d.present[path]
}

// required checks that string key k of s is given and not empty.
func (d *decoder) required(s scope, k, v string) bool {
	path, _ := s.key(k)
	switch {
	case d.bad[path]:
		return false
	case !d.present[path]:
		d.missing(s, k)
		return false
	case strings.TrimSpace(v) == "":
		d.invalid(s, k, "must not be empty")
		return false
	}
	return true
}

// duration fills in a default for an absent duration and refuses zero.
func (d *decoder) duration(s scope, k string, v *Duration, def time.Duration) {
	switch {
	case d.absent(s, k):
		v.Duration = def
	case d.given(s, k) && v.Duration <= 0:
		d.invalid(s, k, "must be positive")
	}
}

// positive fills in a default for an absent integer and refuses values < 1.
func (d *decoder) positive(s scope, k string, v *int, def int) {
	switch {
	case d.absent(s, k):
		*v = def
	case d.given(s, k) && *v < 1:
		d.invalid(s, k, "must be at least 1, have %d", *v)
	}
}

// complete fills in defaults and checks values and references.
func (d *decoder) complete(c *Config, o *options) {
	d.gateway(c)
	d.listeners(c)
	d.identities(c)
	d.oidc(c, o)
	// A secret plugin's name is a scheme connections may use.
	d.plugins(c, o)
	d.listenerPlugins(c)
	d.connections(c, o)
	d.modules(c, "policy", c.Policy, o)
	d.modules(c, "masking", c.Masking, o)
	d.review(c, o)

	m := scope{path: "modules"}
	switch {
	case d.absent(m, "cache_dir"):
		c.Modules.CacheDir = filepath.Join(c.Gateway.DataDir, "wasm-cache")
	case d.given(m, "cache_dir") && strings.TrimSpace(c.Modules.CacheDir) == "":
		d.invalid(m, "cache_dir", "must not be empty")
	case !filepath.IsAbs(c.Modules.CacheDir):
		c.Modules.CacheDir = filepath.Join(c.dir(), c.Modules.CacheDir)
	}
	d.duration(m, "call_timeout", &c.Modules.CallTimeout, DefaultCallTimeout)
	d.positive(m, "max_instances", &c.Modules.MaxInstances, DefaultMaxInstances)
	switch {
	case d.absent(m, "memory_limit"):
		c.Modules.MemoryLimit = DefaultMemoryLimit
	case d.given(m, "memory_limit") && (c.Modules.MemoryLimit < minMemoryLimit || c.Modules.MemoryLimit > maxMemoryLimit):
		d.invalid(m, "memory_limit", "must be between %v and %v, have %v", ByteSize(minMemoryLimit), ByteSize(maxMemoryLimit), c.Modules.MemoryLimit)
	}

	a := scope{path: "audit"}
	d.duration(a, "flush_interval", &c.Audit.FlushInterval, DefaultFlushInterval)
	d.positive(a, "max_batch", &c.Audit.MaxBatch, DefaultMaxBatch)
	d.positive(a, "queue_size", &c.Audit.QueueSize, DefaultQueueSize)

	if c.Secrets.CacheTTL == nil {
		c.Secrets.CacheTTL = &Duration{DefaultCacheTTL}
	}

	l := scope{path: "log"}
	if d.absent(l, "level") {
		c.Log.Level = DefaultLogLevel
	} else if d.given(l, "level") {
		lv := strings.ToLower(c.Log.Level)
		if _, ok := logLevels[lv]; !ok {
			d.invalid(l, "level", "want one of debug, info, warn, error, have %q", c.Log.Level)
		}
		c.Log.Level = lv
	}
}

func (d *decoder) gateway(c *Config) {
	g := scope{path: "gateway"}
	if d.absent(g, "data_dir") {
		c.Gateway.DataDir = DefaultDataDir
	} else if d.given(g, "data_dir") && strings.TrimSpace(c.Gateway.DataDir) == "" {
		d.invalid(g, "data_dir", "must not be empty")
	}
	if c.Gateway.DataDir != "" && !filepath.IsAbs(c.Gateway.DataDir) {
		c.Gateway.DataDir = filepath.Join(c.dir(), c.Gateway.DataDir)
	}
	if d.absent(g, "admin_groups") {
		c.Gateway.AdminGroups = DefaultAdminGroups()
	}
	d.duration(g, "shutdown_timeout", &c.Gateway.ShutdownTimeout, DefaultShutdownTimeout)
}

func (d *decoder) listeners(c *Config) {
	if p := c.Listen.Postgres; p != nil {
		s := scope{path: "listen.postgres"}
		if d.required(s, "address", p.Address) {
			if err := checkAddress(p.Address, true); err != nil {
				d.invalid(s, "address", "%v", err)
			}
		}
		d.tlsFiles(s, p.TLSFiles)
		switch {
		case d.absent(s, "max_message_bytes"):
			p.MaxMessageBytes = DefaultMaxMessageBytes
		case d.given(s, "max_message_bytes") && (p.MaxMessageBytes < minMessageBytes || p.MaxMessageBytes > maxMessageBytes):
			d.invalid(s, "max_message_bytes", "must be between %v and %v, have %v", minMessageBytes, maxMessageBytes, p.MaxMessageBytes)
		}
		d.duration(s, "handshake_timeout", &p.HandshakeTimeout, DefaultHandshakeTimeout)
		d.positive(s, "max_connections", &p.MaxConnections, DefaultMaxConnections)
	}
	if l := c.Listen.SSH; l != nil {
		s := scope{path: "listen.ssh"}
		if d.required(s, "address", l.Address) {
			if err := checkAddress(l.Address, true); err != nil {
				d.invalid(s, "address", "%v", err)
			}
		}
		switch {
		case d.absent(s, "host_key_file"):
			l.HostKeyFile = filepath.Join(c.Gateway.DataDir, "ssh_host_ed25519_key")
		case d.given(s, "host_key_file") && strings.TrimSpace(l.HostKeyFile) == "":
			d.invalid(s, "host_key_file", "must not be empty")
		case !filepath.IsAbs(l.HostKeyFile):
			l.HostKeyFile = filepath.Join(c.dir(), l.HostKeyFile)
		}
		d.duration(s, "handshake_timeout", &l.HandshakeTimeout, DefaultSSHHandshakeTimeout)
		if d.absent(s, "ciphers") {
			l.Ciphers = slices.Clone(DefaultSSHCiphers)
		}
		for _, name := range l.Ciphers {
			if !slices.Contains(ssh.SupportedAlgorithms().Ciphers, name) {
				d.invalid(s, "ciphers", "unknown or insecure cipher %q (known: %s)", name, strings.Join(ssh.SupportedAlgorithms().Ciphers, ", "))
			}
		}
		if d.given(s, "ciphers") && len(l.Ciphers) == 0 {
			d.invalid(s, "ciphers", "must not be empty")
		}
		d.positive(s, "max_connections", &l.MaxConnections, DefaultMaxConnections)
	}
	if a := c.Listen.API; a != nil {
		s := scope{path: "listen.api"}
		if d.required(s, "address", a.Address) {
			if err := checkAddress(a.Address, true); err != nil {
				d.invalid(s, "address", "%v", err)
			}
		}
		d.tlsFiles(s, a.TLSFiles)
		if !a.TLS && !d.bad["listen.api.tls"] {
			for _, k := range []string{"tls_cert_file", "tls_key_file"} {
				if d.given(s, k) {
					d.invalid(s, k, "has no effect unless tls = true")
				}
			}
		}
	}
}

// tlsFiles checks that a certificate and its key come together.
func (d *decoder) tlsFiles(s scope, f TLSFiles) {
	cert, key := d.given(s, "tls_cert_file"), d.given(s, "tls_key_file")
	switch {
	case cert && !key:
		d.invalid(s, "tls_cert_file", "needs tls_key_file too")
	case key && !cert:
		d.invalid(s, "tls_key_file", "needs tls_cert_file too")
	case cert && (f.CertFile == "" || f.KeyFile == ""):
		d.invalid(s, "tls_cert_file", "tls_cert_file and tls_key_file must not be empty")
	}
}

func (d *decoder) identities(c *Config) {
	names := make(map[string]int)  // name -> line
	tokens := make(map[string]int) // token hash -> line
	keys := make(map[string]int)   // SSH public key -> line
	for i := range c.Identity.Static {
		id := &c.Identity.Static[i]
		s := element("identity.static", i, id.Name)
		if d.required(s, "name", id.Name) {
			d.unique(s, "name", id.Name, names)
		}
		if d.required(s, "token_sha256", id.TokenSHA256) {
			if !hexSHA256.MatchString(id.TokenSHA256) {
				d.invalid(s, "token_sha256", "want 64 hexadecimal digits (the sha256 of the token), have %d characters", len(id.TokenSHA256))
			} else {
				id.TokenSHA256 = strings.ToLower(id.TokenSHA256)
				d.unique(s, "token_sha256", id.TokenSHA256, tokens)
			}
		}
		d.sshKeys(s, id, keys)
	}
}

// sshKeys checks an identity's SSH public keys: each parses, and no key
// belongs to two identities.
func (d *decoder) sshKeys(s scope, id *StaticIdentity, seen map[string]int) {
	for j, k := range id.SSHKeys {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			d.invalid(s, "ssh_keys", "key %d is not an SSH public key (an authorized_keys line such as \"ssh-ed25519 AAAA... comment\")", j+1)
			continue
		}
		if _, ok := pk.(*ssh.Certificate); ok {
			d.invalid(s, "ssh_keys", "key %d is a certificate: give the public key itself", j+1)
			continue
		}
		d.unique(s, "ssh_keys", string(pk.Marshal()), seen)
	}
}

// unique records v, the value of key k of s, in seen and refuses a repeat.
func (d *decoder) unique(s scope, k, v string, seen map[string]int) {
	path, _ := s.key(k)
	if first, ok := seen[v]; ok {
		if k == "name" {
			d.invalid(s, k, "duplicate name %q, first used at line %d", v, first)
		} else {
			d.invalid(s, k, "duplicate value, first used at line %d", first)
		}
		return
	}
	seen[v] = d.lineOf(path)
}

func (d *decoder) connections(c *Config, o *options) {
	names := make(map[string]int)
	for i := range c.Connection {
		cn := &c.Connection[i]
		s := element("connection", i, cn.Name)
		if d.required(s, "name", cn.Name) {
			if !connectionName.MatchString(cn.Name) {
				d.invalid(s, "name", "want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit")
			} else {
				d.unique(s, "name", cn.Name, names)
			}
		}
		if d.required(s, "protocol", cn.Protocol) {
			if listening, ok := protocols[cn.Protocol]; !ok {
				d.invalid(s, "protocol", "unknown protocol %q (known: %s)", cn.Protocol, strings.Join(knownProtocols(), ", "))
			} else if !listening(c) {
				d.invalid(s, "protocol", "protocol %q has no listener: add a [listen.%s] table", cn.Protocol, cn.Protocol)
			}
		}
		if d.required(s, "address", cn.Address) {
			if err := checkAddress(cn.Address, false); err != nil {
				d.invalid(s, "address", "%v", err)
			}
		}
		switch cn.Protocol {
		case "postgres":
			d.required(s, "database", cn.Database)
			for _, k := range []string{"host_key", "known_hosts", "allow_forward", "allow_remote_forward"} {
				if d.given(s, k) {
					d.invalid(s, k, "applies to ssh connections only")
				}
			}
		case "ssh":
			d.sshHostKeys(c, s, cn)
			for _, f := range cn.AllowForward {
				if err := CheckForward(f); err != nil {
					d.invalid(s, "allow_forward", "%v", err)
				}
			}
			for _, f := range cn.AllowRemoteForward {
				if err := CheckForward(f); err != nil {
					d.invalid(s, "allow_remote_forward", "%v", err)
				}
			}
			if d.given(s, "database") {
				d.invalid(s, "database", "applies to postgres connections only")
			}
		}
		d.required(s, "user", cn.User)
		if d.required(s, "secret", cn.Secret) {
			if msg := checkReference(cn.Secret, o.schemes); msg != "" {
				d.invalid(s, "secret", "%s", msg)
			}
		}
		switch {
		case d.absent(s, "tls"):
			cn.TLS = DefaultConnectionTLS
		case d.given(s, "tls") && !slices.Contains(tlsModes, cn.TLS):
			d.invalid(s, "tls", "want one of %s, have %q", strings.Join(tlsModes, ", "), cn.TLS)
		case cn.TLS == "disable":
			for _, k := range []string{"tls_ca_file", "tls_server_name"} {
				if d.given(s, k) {
					d.invalid(s, k, "has no effect when tls = \"disable\"")
				}
			}
		}
		d.duration(s, "connect_timeout", &cn.ConnectTimeout, DefaultConnectTimeout)
	}
}

// listenerPlugins checks that a listener's plugin is a [[plugin]] of kind
// "protocol".
func (d *decoder) listenerPlugins(c *Config) {
	if p := c.Listen.Postgres; p != nil {
		d.listenerPlugin(c, scope{path: "listen.postgres"}, p.Plugin)
	}
	if p := c.Listen.SSH; p != nil {
		d.listenerPlugin(c, scope{path: "listen.ssh"}, p.Plugin)
	}
}

func (d *decoder) listenerPlugin(c *Config, s scope, name string) {
	if !d.given(s, "plugin") {
		return
	}
	for _, pl := range c.Plugin {
		if pl.Name == name {
			if pl.Kind != "protocol" {
				d.invalid(s, "plugin", "plugin %q is of kind %q, not \"protocol\"", name, pl.Kind)
			}
			return
		}
	}
	d.invalid(s, "plugin", "no [[plugin]] named %q", name)
}

// sshHostKeys checks that an ssh connection pins its target's host key,
// in host_key or in a known_hosts file, and that the keys parse.
func (d *decoder) sshHostKeys(c *Config, s scope, cn *Connection) {
	hk, kh := d.given(s, "host_key"), d.given(s, "known_hosts")
	switch {
	case hk && kh:
		d.invalid(s, "known_hosts", "give host_key or known_hosts, not both")
	case hk:
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cn.HostKey)); err != nil {
			d.invalid(s, "host_key", "not an SSH public key such as \"ssh-ed25519 AAAA...\" (ssh-keyscan prints the target's)")
		}
	case kh:
		if !filepath.IsAbs(cn.KnownHosts) {
			cn.KnownHosts = filepath.Join(c.dir(), cn.KnownHosts)
		}
		if _, err := KnownHostKeys(cn.KnownHosts); err != nil {
			d.invalid(s, "known_hosts", "%v", err)
		}
	case !d.bad[joinKey(s.path, "host_key")] && !d.bad[joinKey(s.path, "known_hosts")]:
		d.missing(s, "host_key")
	}
}

// CheckForward checks an allow_forward entry: "host:port" where host is an
// IP address, a CIDR block or a name and port a number or "*".
func CheckForward(f string) error {
	host, port, err := net.SplitHostPort(f)
	if err != nil || host == "" {
		return fmt.Errorf("%q: want host:port, such as \"10.0.0.0/8:5432\" or \"db.internal:*\"", f)
	}
	if port != "*" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: the port must be a number from 1 to 65535 or *", f)
		}
	}
	if strings.Contains(host, "/") {
		if _, _, err := net.ParseCIDR(host); err != nil {
			return fmt.Errorf("%q: %v", f, err)
		}
	}
	return nil
}

// KnownHostKeys reads the keys of a known_hosts file, as authorized_keys
// lines (the host names do not matter: the connection names its target).
func KnownHostKeys(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read the known_hosts file: %v", err)
	}
	var keys []string
	for rest := data; len(rest) > 0; {
		_, _, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("the known_hosts file does not parse: %v", err)
		}
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
		rest = next
	}
	if len(keys) == 0 {
		return nil, errors.New("the known_hosts file holds no key")
	}
	return keys, nil
}

// plugins checks the [[plugin]] tables and adds the name of each plugin of
// kind "secret" to o.schemes.
func (d *decoder) plugins(c *Config, o *options) {
	names := make(map[string]int)
	builtin := slices.Clone(o.schemes)
	for i := range c.Plugin {
		p := &c.Plugin[i]
		s := element("plugin", i, p.Name)
		kindOK := false
		if d.required(s, "kind", p.Kind) {
			if kindOK = slices.Contains(pluginKinds, p.Kind); !kindOK {
				d.invalid(s, "kind", "want one of %s, have %q", strings.Join(pluginKinds, ", "), p.Kind)
			}
		}
		if d.required(s, "name", p.Name) {
			switch {
			case !referenceScheme.MatchString(p.Name):
				d.invalid(s, "name", "want 1 to 32 lowercase letters, digits or '-', starting with a letter (a plugin of kind secret serves the secret scheme of its name)")
			case p.Kind == "secret" && slices.Contains(builtin, p.Name):
				d.invalid(s, "name", "%q is a built-in secret scheme; give the plugin another name", p.Name)
			default:
				d.unique(s, "name", p.Name, names)
				if path, _ := s.key("name"); p.Kind == "secret" && kindOK && !d.bad[path] {
					o.schemes = append(o.schemes, p.Name)
				}
			}
		}
		if d.required(s, "path", p.Path) {
			if !filepath.IsAbs(p.Path) {
				p.Path = filepath.Join(c.dir(), p.Path)
			}
			if msg := checkExecutable(p.Path); msg != "" {
				d.invalid(s, "path", "%s", msg)
			}
		}
		if d.required(s, "sha256", p.SHA256) {
			if !hexSHA256.MatchString(p.SHA256) {
				d.invalid(s, "sha256", "want 64 hexadecimal digits (sha256sum of the plugin executable), have %d characters", len(p.SHA256))
			}
			p.SHA256 = strings.ToLower(p.SHA256)
		}
		for _, k := range slices.Sorted(maps.Keys(p.Env)) {
			switch {
			case !envName.MatchString(k):
				d.invalid(s, "env", "%q is not an environment variable name (letters, digits and '_', not starting with a digit)", k)
			case k == "GATEWAYD_PLUGIN" || strings.HasPrefix(k, "PLUGIN_"):
				// The go-plugin handshake's own variables (sdk/plugin.Handshake).
				d.invalid(s, "env", "%q is set by gatewayd for the plugin handshake", k)
			}
		}
		if p.Env == nil {
			p.Env = map[string]string{}
		}
		if p.Args == nil {
			p.Args = []string{}
		}
		d.duration(s, "start_timeout", &p.StartTimeout, DefaultPluginTimeout)
		d.duration(s, "call_timeout", &p.CallTimeout, DefaultPluginTimeout)
	}
}

// checkExecutable returns what keeps path from being run as a plugin, or "".
func checkExecutable(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Sprintf("cannot use the plugin executable: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Sprintf("the plugin executable is not a regular file (%v)", fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Sprintf("the plugin executable is not executable (mode %04o)", fi.Mode().Perm())
	}
	return ""
}

// modules checks the [[policy]] or [[masking]] tables.
func (d *decoder) modules(c *Config, array string, mods []Module, o *options) {
	for i := range mods {
		m := &mods[i]
		s := element(array, i, "")
		if d.required(s, "module", m.Module) {
			switch {
			case m.IsFile():
				if !filepath.IsAbs(m.Module) {
					m.Module = filepath.Join(c.dir(), m.Module)
				}
				if _, err := os.Stat(m.Module); err != nil {
					var pe *fs.PathError
					if errors.As(err, &pe) {
						err = pe.Err
					}
					d.invalid(s, "module", "cannot read the module file: %v", err)
				}
				if d.required(s, "sha256", m.SHA256) && !hexSHA256.MatchString(m.SHA256) {
					d.invalid(s, "sha256", "want 64 hexadecimal digits (sha256sum of the .wasm file), have %d characters", len(m.SHA256))
				}
				m.SHA256 = strings.ToLower(m.SHA256)
			case !slices.Contains(o.modules, m.Module):
				d.invalid(s, "module", "unknown built-in module %q (built-ins: %s; a custom module is a path ending in .wasm)", m.Module, strings.Join(o.modules, ", "))
			case d.given(s, "sha256"):
				d.invalid(s, "sha256", "applies only to .wasm files, not to the built-in %q", m.Module)
			}
		}
		if d.absent(s, "connections") {
			d.missing(s, "connections")
		} else if d.given(s, "connections") {
			if len(m.Connections) == 0 {
				d.invalid(s, "connections", "must list at least one connection name or glob")
			}
			for _, g := range m.Connections {
				if _, err := path.Match(g, ""); err != nil {
					d.invalid(s, "connections", "bad glob %q: %v", g, err)
					continue
				}
				if !slices.ContainsFunc(c.Connection, func(cn Connection) bool { return MatchGlob(g, cn.Name) }) {
					d.invalid(s, "connections", "%q matches no connection", g)
				}
			}
		}
		if d.given(s, "groups") && len(m.Groups) == 0 {
			d.invalid(s, "groups", "must not be empty when given (leave it out to apply to every session)")
		}
		if m.Config == nil {
			m.Config = map[string]any{}
		}
		if m.Interruptible == nil {
			v := m.IsFile()
			m.Interruptible = &v
		}
	}
}

// MatchGlob reports whether a connection name matches a glob of a module's
// connections list.
func MatchGlob(glob, name string) bool {
	ok, err := path.Match(glob, name)
	return err == nil && ok
}

func knownProtocols() []string {
	var ps []string
	for p := range protocols {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// checkAddress checks a host:port. A listener may leave the host empty (all
// interfaces) and use port 0 (a free port); a target may not.
func checkAddress(addr string, listener bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port", addr)
	}
	if host == "" && !listener {
		return fmt.Errorf("invalid address %q: missing host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || n == 0 && !listener {
		return fmt.Errorf("invalid address %q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

// checkReference checks a secret reference against the known schemes and
// returns what is wrong with it, or "". The message never contains the
// reference: if it is not one, it may be the secret itself.
func checkReference(ref string, schemes []string) string {
	known := strings.Join(schemes, ", ")
	scheme, rest, ok := strings.Cut(ref, ":")
	if !ok || !referenceScheme.MatchString(scheme) {
		return fmt.Sprintf("not a secret reference: secrets are referenced, never inlined; write \"scheme:reference\" such as \"env:PGPASSWORD\" or \"file:/etc/gatewayd/pg.pass\" (known schemes: %s)", known)
	}
	if !slices.Contains(schemes, scheme) {
		return fmt.Sprintf("unknown secret scheme %q (known schemes: %s)", scheme, known)
	}
	if strings.TrimSpace(rest) == "" {
		return fmt.Sprintf("empty reference after %q", scheme+":")
	}
	return ""
}
