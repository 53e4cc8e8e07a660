package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite the expected part of golden files")

// TestLoadErrors loads each invalid file in testdata and compares every
// error line, file:line included.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"syntax.toml", []string{
			`testdata/syntax.toml:5: strings cannot contain newlines`,
		}},
		{"unknown_key.toml", []string{
			`testdata/unknown_key.toml:4: unknown key "gateway.datadir"`,
			`testdata/unknown_key.toml:8: unknown key "listen.postgres.tls"`,
			`testdata/unknown_key.toml:10: unknown key "listen.ldap"`,
			`testdata/unknown_key.toml:24: unknown key "connection.adress"`,
			`testdata/unknown_key.toml:29: unknown key "connection.options"`,
			`testdata/unknown_key.toml:33: unknown key "audits"`,
		}},
		{"wrong_type.toml", []string{
			`testdata/wrong_type.toml:2: key "gateway.data_dir": want string, have integer`,
			`testdata/wrong_type.toml:3: key "gateway.shutdown_timeout": invalid duration "10": want a number and a unit, such as "10s" or "1m30s"`,
			`testdata/wrong_type.toml:4: key "gateway.admin_groups": want array, have string`,
			`testdata/wrong_type.toml:8: key "listen.postgres.max_message_bytes": invalid size "16MB": want a whole number of bytes or of KiB, MiB or GiB, such as "16MiB"`,
			`testdata/wrong_type.toml:9: key "listen.postgres.handshake_timeout": invalid duration "fast": want a number and a unit, such as "10s" or "1m30s"`,
			`testdata/wrong_type.toml:10: key "listen.postgres.max_connections": want integer, have string`,
			`testdata/wrong_type.toml:11: key "listen.postgres.allow_cleartext_password": want boolean, have string`,
			`testdata/wrong_type.toml:15: key "listen.api.tls": want boolean, have integer`,
			`testdata/wrong_type.toml:19: identity.static[1] ("alice"): key "groups[2]": want string, have integer`,
			`testdata/wrong_type.toml:28: connection[1] ("app-db"): key "secret": want string, have integer`,
			`testdata/wrong_type.toml:29: connection[1] ("app-db"): key "connect_timeout": invalid duration "-5": want a number and a unit, such as "10s" or "1m30s"`,
			`testdata/wrong_type.toml:32: key "audit.max_batch": want integer, have float`,
			`testdata/wrong_type.toml:33: key "audit.queue_size": want integer, have string`,
			`testdata/wrong_type.toml:36: key "secrets.cache_ttl": invalid duration "-1s": must not be negative`,
			`testdata/wrong_type.toml:39: key "log.level": want string, have array`,
		}},
		{"missing.toml", []string{
			`testdata/missing.toml:3: missing required key "listen.postgres.address"`,
			`testdata/missing.toml:9: identity.static[1]: missing required key "name"`,
			`testdata/missing.toml:9: identity.static[1]: missing required key "token_sha256"`,
			`testdata/missing.toml:20: connection[2] ("reports"): missing required key "address"`,
			`testdata/missing.toml:20: connection[2] ("reports"): missing required key "user"`,
			`testdata/missing.toml:26: connection[3] ("metrics"): missing required key "database"`,
			`testdata/missing.toml:30: connection[3] ("metrics"): key "user": must not be empty`,
		}},
		{"invalid.toml", []string{
			`testdata/invalid.toml:2: key "gateway.shutdown_timeout": must be positive`,
			`testdata/invalid.toml:5: key "listen.postgres.address": invalid address "localhost": want host:port`,
			`testdata/invalid.toml:6: key "listen.postgres.max_message_bytes": must be between 16KiB and 1GiB, have 1KiB`,
			`testdata/invalid.toml:7: key "listen.postgres.tls_cert_file": needs tls_key_file too`,
			`testdata/invalid.toml:10: key "listen.api.address": invalid address "127.0.0.1:99999": port must be a number from 1 to 65535`,
			`testdata/invalid.toml:11: key "listen.api.tls_cert_file": has no effect unless tls = true`,
			`testdata/invalid.toml:12: key "listen.api.tls_key_file": has no effect unless tls = true`,
			`testdata/invalid.toml:16: identity.static[1] ("alice"): key "token_sha256": want 64 hexadecimal digits (the sha256 of the token), have 10 characters`,
			`testdata/invalid.toml:19: identity.static[2] ("alice"): key "name": duplicate name "alice", first used at line 15`,
			`testdata/invalid.toml:24: identity.static[3] ("carol"): key "token_sha256": duplicate value, first used at line 20`,
			`testdata/invalid.toml:29: connection[1] ("app-db"): key "address": invalid address ":5432": missing host`,
			`testdata/invalid.toml:33: connection[1] ("app-db"): key "tls": want one of disable, prefer, require, verify-full, have "verify"`,
			`testdata/invalid.toml:36: connection[2] ("app-db"): key "name": duplicate name "app-db", first used at line 27`,
			`testdata/invalid.toml:37: connection[2] ("app-db"): key "protocol": unknown protocol "mssql" (known: postgres, ssh)`,
			`testdata/invalid.toml:38: connection[2] ("app-db"): key "address": invalid address "db.internal:0": port must be a number from 1 to 65535`,
			`testdata/invalid.toml:43: connection[2] ("app-db"): key "tls_ca_file": has no effect when tls = "disable"`,
			`testdata/invalid.toml:46: connection[3] ("bad name!"): key "name": want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
			`testdata/invalid.toml:54: key "audit.max_batch": must be at least 1, have 0`,
			`testdata/invalid.toml:57: key "log.level": want one of debug, info, warn, error, have "verbose"`,
		}},
		{"modules.toml", []string{
			`testdata/modules.toml:13: policy[1]: key "module": unknown built-in module "nosuch" (built-ins: pii, sqlguard; a custom module is a path ending in .wasm)`,
			`testdata/modules.toml:18: policy[2]: key "sha256": applies only to .wasm files, not to the built-in "sqlguard"`,
			`testdata/modules.toml:19: policy[2]: key "connections": "reports*" matches no connection`,
			`testdata/modules.toml:20: policy[2]: key "groups": must not be empty when given (leave it out to apply to every session)`,
			`testdata/modules.toml:22: masking[1]: missing required key "sha256"`,
			`testdata/modules.toml:23: masking[1]: key "module": cannot read the module file: no such file or directory`,
			`testdata/modules.toml:24: masking[1]: key "connections": bad glob "[bad": syntax error in pattern`,
			`testdata/modules.toml:25: masking[1]: key "config": want table, have string`,
			`testdata/modules.toml:27: masking[2]: missing required key "module"`,
			`testdata/modules.toml:31: key "modules.memory_limit": must be between 4MiB and 4GiB, have 1MiB`,
			`testdata/modules.toml:32: key "modules.call_timeout": must be positive`,
		}},
		{"ssh.toml", []string{
			`testdata/ssh.toml:3: key "listen.ssh.ciphers": unknown or insecure cipher "arcfour" (known: aes128-gcm@openssh.com, aes256-gcm@openssh.com, chacha20-poly1305@openssh.com, aes128-ctr, aes192-ctr, aes256-ctr)`,
			`testdata/ssh.toml:8: identity.static[1] ("alice"): key "ssh_keys": key 2 is not an SSH public key (an authorized_keys line such as "ssh-ed25519 AAAA... comment")`,
			`testdata/ssh.toml:13: identity.static[2] ("bob"): key "ssh_keys": duplicate value, first used at line 8`,
			`testdata/ssh.toml:15: connection[1] ("web-1"): missing required key "host_key"`,
			`testdata/ssh.toml:28: connection[2] ("web-2"): key "host_key": not an SSH public key such as "ssh-ed25519 AAAA..." (ssh-keyscan prints the target's)`,
			`testdata/ssh.toml:29: connection[2] ("web-2"): key "database": applies to postgres connections only`,
			`testdata/ssh.toml:37: connection[3] ("web-3"): key "known_hosts": cannot read the known_hosts file: no such file or directory`,
			`testdata/ssh.toml:38: connection[3] ("web-3"): key "allow_forward": "10.0.0.0/33:22": invalid CIDR address: 10.0.0.0/33`,
			`testdata/ssh.toml:38: connection[3] ("web-3"): key "allow_forward": "nohost": want host:port, such as "10.0.0.0/8:5432" or "db.internal:*"`,
			`testdata/ssh.toml:38: connection[3] ("web-3"): key "allow_forward": "db:99999": the port must be a number from 1 to 65535 or *`,
			`testdata/ssh.toml:39: connection[3] ("web-3"): key "allow_remote_forward": "localhost": want host:port, such as "10.0.0.0/8:5432" or "db.internal:*"`,
		}},
		{"dangling.toml", []string{
			`testdata/dangling.toml:6: connection[1] ("app-db"): key "protocol": protocol "postgres" has no listener: add a [listen.postgres] table`,
			`testdata/dangling.toml:10: connection[1] ("app-db"): key "secret": unknown secret scheme "vault" (known schemes: env, file)`,
			`testdata/dangling.toml:14: connection[2] ("reports"): key "protocol": protocol "postgres" has no listener: add a [listen.postgres] table`,
			`testdata/dangling.toml:18: connection[2] ("reports"): key "secret": not a secret reference: secrets are referenced, never inlined; write "scheme:reference" such as "env:PGPASSWORD" or "file:/etc/gatewayd/pg.pass" (known schemes: env, file)`,
			`testdata/dangling.toml:22: connection[3] ("metrics"): key "protocol": protocol "postgres" has no listener: add a [listen.postgres] table`,
			`testdata/dangling.toml:26: connection[3] ("metrics"): key "secret": empty reference after "env:"`,
		}},
		{"plugins.toml", []string{
			`testdata/plugins.toml:7: plugin[1] ("sops"): key "path": cannot use the plugin executable: no such file or directory`,
			`testdata/plugins.toml:8: plugin[1] ("sops"): key "sha256": want 64 hexadecimal digits (sha256sum of the plugin executable), have 3 characters`,
			`testdata/plugins.toml:9: plugin[1] ("sops"): key "start_timeout": must be positive`,
			`testdata/plugins.toml:12: plugin[2] ("sops"): key "name": duplicate name "sops", first used at line 5`,
			`testdata/plugins.toml:14: plugin[2] ("sops"): key "path": the plugin executable is not a regular file (d---------)`,
			`testdata/plugins.toml:16: plugin[2] ("sops"): key "args[2]": want string, have integer`,
			`testdata/plugins.toml:17: plugin[2] ("sops"): key "env.SOPS_AGE_KEY_FILE": want string, have integer`,
			`testdata/plugins.toml:17: plugin[2] ("sops"): key "env": "BAD NAME" is not an environment variable name (letters, digits and '_', not starting with a digit)`,
			`testdata/plugins.toml:17: plugin[2] ("sops"): key "env": "PLUGIN_MIN_PORT" is set by gatewayd for the plugin handshake`,
			`testdata/plugins.toml:19: plugin[3] ("env"): missing required key "path"`,
			`testdata/plugins.toml:19: plugin[3] ("env"): missing required key "sha256"`,
			`testdata/plugins.toml:20: plugin[3] ("env"): key "name": "env" is a built-in secret scheme; give the plugin another name`,
			`testdata/plugins.toml:24: plugin[4] ("Vault_1"): key "name": want 1 to 32 lowercase letters, digits or '-', starting with a letter (a plugin of kind secret serves the secret scheme of its name)`,
			`testdata/plugins.toml:25: plugin[4] ("Vault_1"): key "kind": want one of secret, protocol, have "sidecar"`,
			`testdata/plugins.toml:28: plugin[4] ("Vault_1"): key "call_timeout": invalid duration "soon": want a number and a unit, such as "10s" or "1m30s"`,
			`testdata/plugins.toml:29: unknown key "plugin.colour"`,
			`testdata/plugins.toml:48: connection[2] ("vault-db"): key "secret": unknown secret scheme "vault" (known schemes: env, file, sops)`,
		}},
		{"multiline.toml", []string{
			`testdata/multiline.toml:7: unknown key "gateway.motd"`,
			`testdata/multiline.toml:12: unknown key "gateway.banner"`,
			`testdata/multiline.toml:40: connection[2] ("reports"): key "tls": want one of disable, prefer, require, verify-full, have "maybe"`,
			`testdata/multiline.toml:42: connection[3] ("metrics"): missing required key "protocol"`,
			`testdata/multiline.toml:42: connection[3] ("metrics"): missing required key "user"`,
			`testdata/multiline.toml:42: connection[3] ("metrics"): missing required key "secret"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatalf("Load succeeded, want errors; config %+v", cfg)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Line == 0 || ce.File != filepath.Join("testdata", tt.file) {
				t.Errorf("errors.As(*Error) = %+v, want a located *Error", ce)
			}
		})
	}
}

// TestGolden parses the configuration before the dashed line of each golden
// file and compares the result, as JSON, with what follows it. Run with
// -update to rewrite the expected part.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	const sep = "----------\n"
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := bytes.Cut(data, []byte(sep))
			if !ok {
				t.Fatalf("%s has no %q line", file, strings.TrimSpace(sep))
			}
			cfg, err := Parse("/etc/gatewayd/gateway.toml", input)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(cfg, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			if *update {
				out := append(append(input, sep...), got...)
				if err := os.WriteFile(file, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestDecodeAgreesWithTOML checks the hand-written decoder against
// BurntSushi/toml's own struct decoding on a valid file: same values, and no
// key left undecoded.
func TestDecodeAgreesWithTOML(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.golden"))
	if err != nil {
		t.Fatal(err)
	}
	input, _, _ := bytes.Cut(data, []byte("----------\n"))

	var want Config
	md, err := toml.Decode(string(input), &want)
	if err != nil {
		t.Fatalf("toml.Decode: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys: %v", u)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(input), &raw); err != nil {
		t.Fatal(err)
	}
	d := newDecoder("gateway.toml", string(input))
	var got Config
	d.decode(raw, &got)
	if len(d.errs) > 0 {
		t.Fatalf("decode: %v", d.err())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoder disagrees with toml.Decode:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	const file = `
[listen.postgres]
address = "127.0.0.1:15432"

[[connection]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
secret = "env:APP_DB_PASSWORD"
`
	cfg, err := Parse("/srv/gw/gateway.toml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	pg := cfg.Listen.Postgres
	cn := cfg.Connection[0]
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"gateway.data_dir", cfg.Gateway.DataDir, "/srv/gw/data"},
		{"gateway.admin_groups", cfg.Gateway.AdminGroups, []string{"admins"}},
		{"gateway.shutdown_timeout", cfg.Gateway.ShutdownTimeout.Duration, 10 * time.Second},
		{"listen.postgres.max_message_bytes", pg.MaxMessageBytes, 16 * MiB},
		{"listen.postgres.handshake_timeout", pg.HandshakeTimeout.Duration, 15 * time.Second},
		{"listen.postgres.max_connections", pg.MaxConnections, 1000},
		{"listen.postgres.allow_cleartext_password", pg.AllowCleartextPassword, false},
		{"listen.api", cfg.Listen.API == nil, true},
		{"connection.tls", cn.TLS, "prefer"},
		{"connection.connect_timeout", cn.ConnectTimeout.Duration, 10 * time.Second},
		{"connection.allow_groups", len(cn.AllowGroups), 0},
		{"audit.flush_interval", cfg.Audit.FlushInterval.Duration, 50 * time.Millisecond},
		{"audit.max_batch", cfg.Audit.MaxBatch, 512},
		{"audit.queue_size", cfg.Audit.QueueSize, 8192},
		{"secrets.cache_ttl", cfg.Secrets.CacheTTL.Duration, 30 * time.Second},
		{"log.level", cfg.Log.Level, "info"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestExplicitValuesKept(t *testing.T) {
	const file = `
[gateway]
admin_groups = []
data_dir = "/var/lib/gatewayd"
[secrets]
cache_ttl = "0s"
`
	cfg, err := Parse("gateway.toml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.AdminGroups == nil || len(cfg.Gateway.AdminGroups) != 0 {
		t.Errorf("admin_groups = %#v, want empty (no admins)", cfg.Gateway.AdminGroups)
	}
	if cfg.Gateway.DataDir != "/var/lib/gatewayd" {
		t.Errorf("data_dir = %q", cfg.Gateway.DataDir)
	}
	if cfg.Secrets.CacheTTL.Duration != 0 {
		t.Errorf("cache_ttl = %v, want 0 (caching off)", cfg.Secrets.CacheTTL)
	}
}

func TestLoadDataDirRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(path, []byte("[gateway]\ndata_dir = \"./state\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "state"); cfg.Gateway.DataDir != want {
		t.Errorf("data_dir = %q, want %q", cfg.Gateway.DataDir, want)
	}
	if cfg.Path != path {
		t.Errorf("Path = %q, want %q", cfg.Path, path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want os.ErrNotExist", err)
	}
}

func TestSecretSchemes(t *testing.T) {
	file := func(secret string) []byte {
		return []byte(`
[listen.postgres]
address = "127.0.0.1:15432"
[[connection]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
secret = "` + secret + `"
`)
	}
	tests := []struct {
		secret  string
		schemes []string
		wantErr string
	}{
		{"env:PGPASSWORD", nil, ""},
		{"file:/etc/gatewayd/pg.pass", nil, ""},
		{"vault:kv/app", nil, `gateway.toml:10: connection[1] ("app-db"): key "secret": unknown secret scheme "vault" (known schemes: env, file)`},
		{"vault:kv/app", []string{"env", "vault"}, ""},
		{"file:/x", []string{"env", "vault"}, `gateway.toml:10: connection[1] ("app-db"): key "secret": unknown secret scheme "file" (known schemes: env, vault)`},
	}
	for _, tt := range tests {
		t.Run(tt.secret, func(t *testing.T) {
			var opts []Option
			if tt.schemes != nil {
				opts = append(opts, WithSecretSchemes(tt.schemes...))
			}
			_, err := Parse("gateway.toml", file(tt.secret), opts...)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("err = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

// TestNoSecretInErrors writes secrets where references belong and checks
// that no error repeats them.
func TestNoSecretInErrors(t *testing.T) {
	const secret = "Tr0ub4dor&3-s3cret"
	tests := []string{
		`secret = "` + secret + `"`,
		`secret = "` + strings.ToUpper(secret) + `:x"`,
		`secret = "Pass word with spaces ` + secret + `"`,
		`secret = ["` + secret + `"]`,
		`secret = { value = "` + secret + `" }`,
	}
	for _, line := range tests {
		file := "[[connection]]\nname = \"db\"\n" + line + "\n"
		_, err := Parse("gateway.toml", []byte(file))
		if err == nil {
			t.Fatalf("%s: no error", line)
		}
		if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(secret)) {
			t.Errorf("error contains the secret:\n%v", err)
		}
	}
}

func TestConnectionByName(t *testing.T) {
	cfg := &Config{Connection: []Connection{{Name: "a"}, {Name: "b", User: "bee"}}}
	c, ok := cfg.ConnectionByName("b")
	if !ok || c.User != "bee" {
		t.Errorf("ConnectionByName(b) = %+v, %v", c, ok)
	}
	c.User = "changed"
	if cfg.Connection[1].User != "changed" {
		t.Error("ConnectionByName returned a copy, want a pointer into the config")
	}
	if _, ok := cfg.ConnectionByName("c"); ok {
		t.Error("ConnectionByName(c) found something")
	}
}

func TestLogSlogLevel(t *testing.T) {
	cfg, err := Parse("gateway.toml", []byte("[log]\nlevel = \"Warn\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "warn" || cfg.Log.SlogLevel().String() != "WARN" {
		t.Errorf("level = %q (%v)", cfg.Log.Level, cfg.Log.SlogLevel())
	}
}

// TestPlugins loads [[plugin]] tables that are right: defaults, a path
// relative to the file, and the scheme a secret plugin adds.
func TestPlugins(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "plugins", "gatewayd-secret-sops")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const hash = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
	file := `
[listen.postgres]
address = "127.0.0.1:15432"

[[plugin]]
name = "sops"
kind = "secret"
path = "plugins/gatewayd-secret-sops"
sha256 = "` + hash + `"
args = ["-v"]
env = { SOPS_AGE_KEY_FILE = "/etc/gatewayd/age.key" }
call_timeout = "2s"

[[plugin]]
name = "pg-ext"
kind = "protocol"
path = "` + exe + `"
sha256 = "` + hash + `"

[[connection]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
secret = "sops:secrets/app.yaml#app_db"
`
	path := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, WithSecretSchemes("env", "file"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Plugin{{
		Name: "sops", Kind: "secret", Path: exe, SHA256: strings.ToLower(hash),
		Args: []string{"-v"}, Env: map[string]string{"SOPS_AGE_KEY_FILE": "/etc/gatewayd/age.key"},
		StartTimeout: Duration{10 * time.Second}, CallTimeout: Duration{2 * time.Second},
	}, {
		Name: "pg-ext", Kind: "protocol", Path: exe, SHA256: strings.ToLower(hash),
		Args: []string{}, Env: map[string]string{},
		StartTimeout: Duration{10 * time.Second}, CallTimeout: Duration{10 * time.Second},
	}}
	if !reflect.DeepEqual(cfg.Plugin, want) {
		t.Errorf("plugins:\n%+v\nwant\n%+v", cfg.Plugin, want)
	}

	// A protocol plugin's name is no secret scheme.
	bad := strings.Replace(file, "sops:secrets", "pg-ext:secrets", 1)
	_, err = Parse(path, []byte(bad))
	if err == nil || !strings.Contains(err.Error(), `unknown secret scheme "pg-ext" (known schemes: env, file, sops)`) {
		t.Errorf("a protocol plugin's name as a scheme: err = %v", err)
	}
}

// TestPluginEnvValuesNeverInErrors: env values may be credentials a plugin
// needs; no error repeats them.
func TestPluginEnvValuesNeverInErrors(t *testing.T) {
	const secret = "hvs.Tr0ub4dor-s3cret"
	file := `
[[plugin]]
name = "vault"
kind = "secret"
path = "/nonexistent"
sha256 = "x"
env = { "VAULT TOKEN" = "` + secret + `", PLUGIN_X = "` + secret + `", N = ["` + secret + `"] }
`
	_, err := Parse("gateway.toml", []byte(file))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error contains an env value:\n%v", err)
	}
}
