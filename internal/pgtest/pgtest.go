// Package pgtest starts throwaway PostgreSQL clusters from the Debian
// packages for tests: a temporary directory, a free loopback port, optional
// TLS, and helpers to create roles and databases and run SQL.
//
// PostgreSQL refuses to run as root, so when the test runs as root initdb and
// postgres are run as the postgres OS user through runuser. Only the TCP
// listener on 127.0.0.1 uses Options.AuthMethod; the unix socket in the
// cluster's directory trusts local connections and carries the helpers'
// administrative SQL.
//
//	srv := pgtest.Start(t, pgtest.Options{TLS: true})
//	srv.CreateRole(t, "app", "s3cret")
//	srv.CreateDatabase(t, "app", "app")
//	srv.Exec(t, "app", "CREATE TABLE customers (id int, name text)")
//	conn, err := pgx.Connect(ctx, srv.DSN("app", "s3cret", "app")) // sslmode=require
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the name of the cluster's superuser role.
const Superuser = "postgres"

// installHint tells a developer how to get the server binaries.
const installHint = "install the PostgreSQL server with: apt-get install -y postgresql"

// Timeouts. A cluster starts in one to two seconds on a 2-core machine; the
// generous bounds only matter on a badly overloaded one.
const (
	initdbTimeout = 2 * time.Minute
	readyTimeout  = 60 * time.Second
	stopTimeout   = 15 * time.Second
	sqlTimeout    = 60 * time.Second
	startAttempts = 4
)

var (
	errNoBinaries = errors.New("pgtest: PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin; " + installHint)
	errPortInUse  = errors.New("pgtest: port taken before postgres could bind it")
)

// Options configures a cluster. The zero value is a cluster without TLS that
// authenticates TCP clients with scram-sha-256.
type Options struct {
	// TLS turns ssl on with a self-signed certificate for 127.0.0.1 and
	// localhost (see Server.CertFile). Clients may still connect without TLS
	// unless RequireTLS is set.
	TLS bool
	// RequireTLS refuses TCP clients that do not use TLS. It implies TLS.
	RequireTLS bool
	// AuthMethod is the pg_hba.conf method for TCP clients: "scram-sha-256"
	// (default), "md5", "password" or "trust". With "md5", passwords are
	// stored as md5 hashes so that the md5 exchange really takes place.
	AuthMethod string
	// SuperuserPassword is the password of the "postgres" role. Default: a
	// random one (see Server.SuperuserPassword).
	SuperuserPassword string
	// MaxConnections is max_connections. Default 200.
	MaxConnections int
	// Settings are extra postgresql.conf parameters, for example
	// {"log_statement": "all"}. Values are quoted for you.
	Settings map[string]string
}

// Server is a running cluster. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	binDir   string
	runuser  string // path of runuser when running as root, else ""
	uid, gid int    // owner of the cluster's files; -1 when not root
	dir      string // temporary root: data/, the socket, the log, the certificate
	dataDir  string
	logPath  string
	certFile string
	keyFile  string
	port     int
	password string

	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{} // closed when the postgres process has exited
	waitErr error         // set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// Start starts a cluster for the test and stops and removes it in
// t.Cleanup. It fails the test, with the server log, if the cluster cannot
// start; it never skips.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s
}

// StartShared starts a cluster without a testing.TB, for a TestMain that
// shares one cluster across the tests of a package. Call stop (or
// Server.Stop) after m.Run:
//
//	func TestMain(m *testing.M) {
//		srv, stop, err := pgtest.StartShared(pgtest.Options{TLS: true})
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		shared = srv
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
func StartShared(opts Options) (*Server, func(), error) {
	s, err := start(opts)
	if err != nil {
		return nil, nil, err
	}
	return s, func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}, nil
}

// Addr is the TCP address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the TCP port.
func (s *Server) Port() int { return s.port }

// BinDir is the directory holding the server's binaries (psql, pgbench,
// pg_ctl, ...), so that clients match the server's version.
func (s *Server) BinDir() string { return s.binDir }

// SocketDir is the directory of the unix socket (local connections are
// trusted).
func (s *Server) SocketDir() string { return s.dir }

// CertFile is the PEM certificate the server presents when TLS is on. It is
// self-signed, so it is also the CA for sslmode=verify-full. Empty without
// TLS.
func (s *Server) CertFile() string { return s.certFile }

// SuperuserPassword is the password of the "postgres" role.
func (s *Server) SuperuserPassword() string { return s.password }

// SuperuserDSN is a URL connecting to the "postgres" database as the
// superuser over TCP, with sslmode=require when TLS is on and disable
// otherwise.
func (s *Server) SuperuserDSN() string { return s.DSN(Superuser, s.password, "postgres") }

// DSN is a URL connecting to dbname as user over TCP, with sslmode=require
// when TLS is on and disable otherwise.
func (s *Server) DSN(user, password, dbname string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(user, password),
		Host:   s.Addr(),
		Path:   "/" + dbname,
	}
	if password == "" {
		u.User = url.User(user)
	}
	q := url.Values{}
	if s.opts.TLS {
		q.Set("sslmode", "require")
	} else {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// LogContents returns the server log so far. Tests print it when something
// fails and search it for leaked secrets.
func (s *Server) LogContents() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(reading the server log: %v)", err)
	}
	return string(b)
}

// CreateRole creates a login role. An empty password creates a role without
// one (useful with AuthMethod "trust"). The password is stored as an md5
// hash when AuthMethod is "md5" and as a SCRAM verifier otherwise.
func (s *Server) CreateRole(t testing.TB, name, password string) {
	t.Helper()
	sql := "CREATE ROLE " + quoteIdent(name) + " LOGIN"
	if password != "" {
		sql = "SET password_encryption = " + quoteLiteral(s.passwordEncryption()) + "; " +
			sql + " PASSWORD " + quoteLiteral(password)
	}
	if err := s.exec("postgres", sql); err != nil {
		t.Fatalf("pgtest: creating role %q: %v", name, err)
	}
}

// CreateDatabase creates a database owned by owner (the superuser when owner
// is empty).
func (s *Server) CreateDatabase(t testing.TB, name, owner string) {
	t.Helper()
	sql := "CREATE DATABASE " + quoteIdent(name)
	if owner != "" {
		sql += " OWNER " + quoteIdent(owner)
	}
	if err := s.exec("postgres", sql); err != nil {
		t.Fatalf("pgtest: creating database %q: %v", name, err)
	}
}

// Exec runs sql, which may hold several statements, in dbname as the
// superuser over the unix socket, and fails the test on any error.
func (s *Server) Exec(t testing.TB, dbname, sql string) {
	t.Helper()
	if err := s.exec(dbname, sql); err != nil {
		t.Fatalf("pgtest: exec in %q: %v", dbname, err)
	}
}

// Stop stops the cluster at once (pg_ctl stop -m immediate) and removes its
// directory. It is idempotent; Start's cleanup calls it, and a test may call
// it earlier to take the upstream away.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

// start initialises and starts a cluster.
func start(opts Options) (_ *Server, err error) {
	if opts.AuthMethod == "" {
		opts.AuthMethod = "scram-sha-256"
	}
	switch opts.AuthMethod {
	case "scram-sha-256", "md5", "password", "trust":
	default:
		return nil, fmt.Errorf("pgtest: unsupported AuthMethod %q (want scram-sha-256, md5, password or trust)", opts.AuthMethod)
	}
	if opts.RequireTLS {
		opts.TLS = true
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 200
	}

	s := &Server{opts: opts, uid: -1, gid: -1, password: opts.SuperuserPassword}
	if s.password == "" {
		s.password = randomHex(16)
	}
	if s.binDir, err = findBinDir(); err != nil {
		return nil, err
	}

	tmpRoot := ""
	if os.Geteuid() == 0 {
		if err := s.lookupPostgresUser(); err != nil {
			return nil, err
		}
		// t.TempDir() and $TMPDIR may sit under directories postgres cannot
		// traverse; /tmp is world-traversable.
		tmpRoot = "/tmp"
	}
	sweepOnce.Do(func() { sweepStale(tmpRoot) })
	if s.dir, err = os.MkdirTemp(tmpRoot, "pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: creating the cluster directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	if err := s.chown(s.dir); err != nil {
		return nil, err
	}
	s.dataDir = filepath.Join(s.dir, "data")
	s.logPath = filepath.Join(s.dir, "postgres.log")

	if err := s.initdb(); err != nil {
		return nil, err
	}
	if opts.TLS {
		s.certFile = filepath.Join(s.dir, "server.crt")
		s.keyFile = filepath.Join(s.dir, "server.key")
		if err := writeSelfSigned(s.certFile, s.keyFile); err != nil {
			return nil, err
		}
		if err := s.chown(s.certFile); err != nil {
			return nil, err
		}
		if err := s.chown(s.keyFile); err != nil {
			return nil, err
		}
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if s.logFile, err = os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("pgtest: creating the server log: %w", err)
	}

	for attempt := 1; ; attempt++ {
		err = s.launch()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			return nil, fmt.Errorf("%w\n--- server log %s ---\n%s", err, s.logPath, s.LogContents())
		}
	}

	if err := s.setSuperuserPassword(); err != nil {
		return nil, err
	}
	return s, nil
}

// findBinDir returns the newest /usr/lib/postgresql/*/bin holding initdb
// and postgres, or $PGTEST_BINDIR when set.
func findBinDir() (string, error) {
	if dir := os.Getenv("PGTEST_BINDIR"); dir != "" {
		if hasServer(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("pgtest: PGTEST_BINDIR=%s holds no initdb and postgres; %s", dir, installHint)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type candidate struct {
		dir     string
		version float64
	}
	var found []candidate
	for _, dir := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil || !hasServer(dir) {
			continue
		}
		found = append(found, candidate{dir, v})
	}
	if len(found) == 0 {
		return "", errNoBinaries
	}
	sort.Slice(found, func(i, j int) bool { return found[i].version > found[j].version })
	return found[0].dir, nil
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres", "pg_ctl"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

func (s *Server) lookupPostgresUser() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pgtest: running as root needs the postgres OS user: %w; %s", err, installHint)
	}
	if s.uid, err = strconv.Atoi(u.Uid); err != nil {
		return fmt.Errorf("pgtest: postgres uid %q: %w", u.Uid, err)
	}
	if s.gid, err = strconv.Atoi(u.Gid); err != nil {
		return fmt.Errorf("pgtest: postgres gid %q: %w", u.Gid, err)
	}
	if s.runuser, err = exec.LookPath("runuser"); err != nil {
		s.runuser = "/usr/sbin/runuser"
		if _, err := os.Stat(s.runuser); err != nil {
			return fmt.Errorf("pgtest: running as root needs runuser (util-linux): %w", err)
		}
	}
	return nil
}

// chown hands path to the postgres OS user when running as root.
func (s *Server) chown(path string) error {
	if s.uid < 0 {
		return nil
	}
	if err := os.Chown(path, s.uid, s.gid); err != nil {
		return fmt.Errorf("pgtest: handing %s to postgres: %w", path, err)
	}
	return nil
}

// command builds a command for one of the server's binaries, run as the
// postgres OS user when the test runs as root. The environment is minimal so
// that a developer's PGPORT, PGDATA or PGHOST cannot leak in.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.binDir, name)
	var cmd *exec.Cmd
	if s.runuser != "" {
		cmd = exec.Command(s.runuser, append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
	return cmd
}

func (s *Server) initdb() error {
	cmd := s.command("initdb",
		"-D", s.dataDir,
		"-U", Superuser,
		"--auth-local=trust", "--auth-host=trust",
		"-E", "UTF8", "--locale=C",
		"--no-sync",
	)
	ctx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	out, err := runWithContext(ctx, cmd)
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

func runWithContext(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
		return out, err
	case <-ctx.Done():
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		<-done
		return out, ctx.Err()
	}
}

func (s *Server) passwordEncryption() string {
	if s.opts.AuthMethod == "md5" {
		return "md5"
	}
	return "scram-sha-256"
}

// writeConfig appends the cluster's settings to postgresql.conf (later lines
// win) and replaces pg_hba.conf.
func (s *Server) writeConfig() error {
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": s.dir,
		"max_connections":         strconv.Itoa(s.opts.MaxConnections),
		"shared_buffers":          "32MB",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"logging_collector":       "off",
		"log_destination":         "stderr",
		"log_line_prefix":         "%m [%p] %q%u@%d ",
		"password_encryption":     s.passwordEncryption(),
	}
	if s.opts.TLS {
		settings["ssl"] = "on"
		settings["ssl_cert_file"] = s.certFile
		settings["ssl_key_file"] = s.keyFile
	}
	for k, v := range s.opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var conf strings.Builder
	conf.WriteString("\n# pgtest\n")
	for _, k := range keys {
		fmt.Fprintf(&conf, "%s = %s\n", k, quoteLiteral(settings[k]))
	}
	f, err := os.OpenFile(filepath.Join(s.dataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: opening postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(conf.String()); err != nil {
		f.Close()
		return fmt.Errorf("pgtest: writing postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgtest: writing postgresql.conf: %w", err)
	}

	method := s.opts.AuthMethod
	var hba strings.Builder
	hba.WriteString("# TYPE     DATABASE USER ADDRESS       METHOD\n")
	hba.WriteString("local      all      all                  trust\n")
	if s.opts.TLS {
		fmt.Fprintf(&hba, "hostssl    all      all  127.0.0.1/32  %s\n", method)
	}
	if s.opts.RequireTLS {
		hba.WriteString("hostnossl  all      all  127.0.0.1/32  reject\n")
	} else {
		fmt.Fprintf(&hba, "host       all      all  127.0.0.1/32  %s\n", method)
	}
	// Rewrite in place so the file keeps its owner (postgres).
	if err := os.WriteFile(filepath.Join(s.dataDir, "pg_hba.conf"), []byte(hba.String()), 0o600); err != nil {
		return fmt.Errorf("pgtest: writing pg_hba.conf: %w", err)
	}
	return nil
}

// launch starts postgres on a free port and waits until it accepts
// connections. It returns errPortInUse when another process took the port
// between freePort and postgres binding it.
func (s *Server) launch() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	offset, _ := s.logFile.Seek(0, io.SeekEnd)

	cmd := s.command("postgres", "-D", s.dataDir, "-c", "port="+strconv.Itoa(port))
	cmd.Stdout = s.logFile
	cmd.Stderr = s.logFile
	// If the test binary dies without cleaning up, ask postgres (or runuser,
	// which forwards the signal) to shut down rather than linger.
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.port = cmd, exited, port
	go func() {
		s.waitErr = cmd.Wait()
		close(exited)
	}()

	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		select {
		case <-exited:
			if strings.Contains(s.logSince(offset), "could not bind") {
				return errPortInUse
			}
			return fmt.Errorf("pgtest: postgres exited during startup: %v", s.waitErr)
		default:
		}
		if lastErr = s.ping(); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not ready after %s: %v", readyTimeout, lastErr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *Server) logSince(offset int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// socketConfig is a superuser connection over the unix socket.
func (s *Server) socketConfig(dbname string) (*pgconn.Config, error) {
	dsn := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=5",
		quoteConnValue(s.dir), s.port, Superuser, quoteConnValue(dbname))
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgtest: socket config: %w", err)
	}
	return cfg, nil
}

func (s *Server) ping() error {
	cfg, err := s.socketConfig("postgres")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// exec runs sql in dbname as the superuser over the unix socket.
func (s *Server) exec(dbname, sql string) error {
	cfg, err := s.socketConfig(dbname)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting over the unix socket: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql).ReadAll()
	return err
}

func (s *Server) setSuperuserPassword() error {
	sql := "SET password_encryption = " + quoteLiteral(s.passwordEncryption()) + "; " +
		"ALTER ROLE " + quoteIdent(Superuser) + " PASSWORD " + quoteLiteral(s.password)
	if err := s.exec("postgres", sql); err != nil {
		return fmt.Errorf("pgtest: setting the superuser password: %w", err)
	}
	return nil
}

func (s *Server) stop() error {
	var errs []error
	if s.cmd != nil {
		select {
		case <-s.exited:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			out, err := runWithContext(ctx, s.command("pg_ctl", "stop", "-D", s.dataDir, "-m", "immediate", "-w", "-t", "10"))
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("pgtest: pg_ctl stop: %w: %s", err, strings.TrimSpace(string(out))))
			}
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				// Last resort: kill the postmaster by its pid file, then
				// runuser.
				if pid := postmasterPID(s.dataDir); pid > 0 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				_ = s.cmd.Process.Kill()
				select {
				case <-s.exited:
				case <-time.After(stopTimeout):
					errs = append(errs, errors.New("pgtest: postgres did not exit"))
				}
			}
		}
	}
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: removing %s: %w", s.dir, err))
		}
	}
	return errors.Join(errs...)
}

// postmasterPID reads the postmaster's pid from dataDir/postmaster.pid; 0
// when there is none.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

var sweepOnce sync.Once

// sweepStale removes cluster directories that test binaries killed before
// their cleanup ran (a go test -timeout panic, a SIGKILL) left behind: older
// than an hour and without a live postmaster.
func sweepStale(tmpRoot string) {
	if tmpRoot == "" {
		tmpRoot = os.TempDir()
	}
	dirs, _ := filepath.Glob(filepath.Join(tmpRoot, "pgtest-*"))
	for _, dir := range dirs {
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < time.Hour {
			continue
		}
		if pid := postmasterPID(filepath.Join(dir, "data")); pid > 0 {
			if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
				continue // still running
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// quoteLiteral quotes a SQL (and postgresql.conf) string literal; both
// double embedded single quotes.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quoteConnValue quotes a keyword/value connection-string value.
func quoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
