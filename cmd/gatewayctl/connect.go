package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/identity/login"
)

// handshakeTimeout bounds the local proxy's part of a PostgreSQL startup.
const handshakeTimeout = 30 * time.Second

// lookupConnection finds a connection the caller may use.
func (a *app) lookupConnection(ctx context.Context, cl *client, name string) (login.Connection, error) {
	var list login.ConnectionList
	if err := cl.getJSON(ctx, requestTimeout, "/v1/connections", nil, &list); err != nil {
		return login.Connection{}, fmt.Errorf("listing connections: %w", err)
	}
	for _, c := range list.Connections {
		if c.Name == name {
			return c, nil
		}
	}
	return login.Connection{}, fmt.Errorf("no connection %q that you may use (gatewayctl ls lists them)", name)
}

func (a *app) connect(ctx context.Context, args []string) error {
	c := a.command("connect", "connect NAME [--port N]")
	c.gatewayFlags()
	port := c.Int("port", 0, "local `PORT` to listen on (default: a free one)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos, "NAME"); err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	conn, err := a.lookupConnection(ctx, cl, pos[0])
	if err != nil {
		return err
	}
	// The PostgreSQL user is the token's identity, static or signed in.
	var who api.Whoami
	if err := cl.getJSON(ctx, requestTimeout, "/v1/whoami", nil, &who); err != nil {
		return fmt.Errorf("asking who you are: %w", err)
	}
	upstream := net.JoinHostPort(cl.base.Hostname(), strconv.Itoa(conn.Port))
	var serve func(context.Context, net.Conn) error
	var hint func(lport int) string
	switch conn.Protocol {
	case "postgres":
		p := &pgProxy{
			gateway:    upstream,
			serverName: cl.base.Hostname(),
			connection: conn.Name,
			cacert:     a.cacert,
			log:        a.stderr,
			credential: func() (string, string, error) { return cl.token, who.Name, nil },
		}
		if cl.fromLogin {
			// The login stored when each client connects: a logout ends
			// its use, a new login needs no restart.
			p.credential = func() (string, string, error) {
				c, err := a.storedLogin()
				if err != nil {
					return "", "", err
				}
				if c == nil {
					return "", "", errors.New("not signed in: run gatewayctl login")
				}
				return c.Token, c.Name, nil
			}
		}
		if err := p.loadTLS(); err != nil {
			return err
		}
		serve = p.serve
		hint = func(lport int) string { return fmt.Sprintf("psql -h 127.0.0.1 -p %d %s", lport, conn.Name) }
	case "ssh":
		// SSH authenticates end to end with the login's certificate; the
		// local port only carries the bytes to the gateway.
		args, err := a.sshOptions()
		if err != nil {
			return err
		}
		serve = func(ctx context.Context, cc net.Conn) error { return relayTCP(ctx, cc, upstream) }
		hint = func(lport int) string {
			return fmt.Sprintf("ssh -p %d %s %s@127.0.0.1", lport, strings.Join(args, " "), conn.Name)
		}
	default:
		return fmt.Errorf("gatewayctl connect does not speak %s yet", conn.Protocol)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listening on 127.0.0.1:%d: %w", *port, err)
	}
	defer ln.Close()
	lport := ln.Addr().(*net.TCPAddr).Port
	fmt.Fprintf(a.stdout, "Listening on %s for %s; connect with:\n  %s\nCtrl-C stops.\n", ln.Addr(), conn.Name, hint(lport))
	go func() { <-ctx.Done(); _ = ln.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		cc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx, cc); err != nil {
				fmt.Fprintf(a.stderr, "gatewayctl: %v\n", err)
			}
		}()
	}
}

// pgProxy relays local PostgreSQL clients to the gateway, answering the
// gateway's password request with the token.
type pgProxy struct {
	gateway, serverName, connection, cacert string
	tls                                     *tls.Config
	log                                     io.Writer
	// credential returns the token to answer with and the identity's
	// name (the PostgreSQL user), for each client.
	credential func() (token, name string, err error)
}

func (p *pgProxy) loadTLS() error {
	p.tls = &tls.Config{ServerName: p.serverName, MinVersion: tls.VersionTLS12}
	if p.cacert != "" {
		pem, err := os.ReadFile(p.cacert)
		if err != nil {
			return fmt.Errorf("reading CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("reading CA certificates: no PEM certificate in %s", p.cacert)
		}
		p.tls.RootCAs = pool
	}
	return nil
}

func (p *pgProxy) serve(ctx context.Context, cc net.Conn) error {
	defer cc.Close()
	_ = cc.SetDeadline(time.Now().Add(handshakeTimeout))
	be := pgproto3.NewBackend(cc, cc)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return fmt.Errorf("reading the client's startup: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			// The local hop is loopback; the gateway hop is TLS.
			if _, err := cc.Write([]byte{'N'}); err != nil {
				return err
			}
		case *pgproto3.StartupMessage:
			startup = m
		case *pgproto3.CancelRequest:
			// The key is the gateway's (its BackendKeyData came through
			// the relay): pass the request on.
			return p.cancel(ctx, m)
		default:
			return fmt.Errorf("unexpected startup message %T", m)
		}
	}
	fail := func(msg string) error {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08006", Message: "gatewayctl: " + msg})
		_ = be.Flush()
		return errors.New(msg)
	}
	token, name, err := p.credential()
	if err != nil {
		return fail(err.Error())
	}
	up, err := p.dial(ctx)
	if err != nil {
		return fail(err.Error())
	}
	defer up.Close()
	params := map[string]string{}
	for k, v := range startup.Parameters {
		params[k] = v
	}
	params["user"], params["database"] = name, p.connection
	fe := pgproto3.NewFrontend(up, up)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := fe.Flush(); err != nil {
		return fail(fmt.Sprintf("talking to the gateway: %v", err))
	}
	msg, err := fe.Receive()
	if err != nil {
		return fail(fmt.Sprintf("talking to the gateway: %v", err))
	}
	switch m := msg.(type) {
	case *pgproto3.AuthenticationCleartextPassword:
		fe.Send(&pgproto3.PasswordMessage{Password: token})
		if err := fe.Flush(); err != nil {
			return fail(fmt.Sprintf("talking to the gateway: %v", err))
		}
	case *pgproto3.ErrorResponse:
		be.Send(m)
		_ = be.Flush()
		return nil
	default:
		return fail(fmt.Sprintf("the gateway asked for %T, not a password", m))
	}
	_ = cc.SetDeadline(time.Time{})
	_ = up.SetDeadline(time.Time{})
	// From here on the gateway's answers (AuthenticationOk or an error)
	// and the session go through unchanged.
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(up, cc); _ = up.CloseWrite(); errc <- err }()
	go func() { _, err := io.Copy(cc, up); errc <- err }()
	select {
	case <-errc:
	case <-ctx.Done():
	}
	return nil
}

// dial opens a TLS connection to the gateway's PostgreSQL listener, with
// the handshake deadline set.
func (p *pgProxy) dial(ctx context.Context) (*tls.Conn, error) {
	d := net.Dialer{Timeout: handshakeTimeout}
	raw, err := d.DialContext(ctx, "tcp", p.gateway)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the gateway at %s: %v", p.gateway, err)
	}
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := raw.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil { // SSLRequest
		raw.Close()
		return nil, fmt.Errorf("talking to the gateway: %v", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(raw, b[:]); err != nil || b[0] != 'S' {
		raw.Close()
		return nil, errors.New("the gateway does not offer TLS")
	}
	up := tls.Client(raw, p.tls)
	if err := up.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS with the gateway: %v", err)
	}
	return up, nil
}

// cancel passes a client's cancel request on to the gateway.
func (p *pgProxy) cancel(ctx context.Context, m *pgproto3.CancelRequest) error {
	up, err := p.dial(ctx)
	if err != nil {
		return fmt.Errorf("passing on a cancel request: %w", err)
	}
	defer up.Close()
	buf, err := m.Encode(nil)
	if err != nil {
		return err
	}
	if _, err := up.Write(buf); err != nil {
		return fmt.Errorf("passing on a cancel request: %w", err)
	}
	// The gateway closes the connection when it has handled it.
	_, _ = io.Copy(io.Discard, up)
	return nil
}

// ssh runs OpenSSH's ssh to an ssh connection through the gateway with
// the certificate login stored.
func (a *app) ssh(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return usagef("ssh: usage: gatewayctl ssh NAME [ssh arguments]")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	conn, err := a.lookupConnection(ctx, cl, args[0])
	if err != nil {
		return err
	}
	if conn.Protocol != "ssh" {
		return fmt.Errorf("%s is a %s connection: use gatewayctl connect %s", conn.Name, conn.Protocol, conn.Name)
	}
	opts, err := a.sshOptions()
	if err != nil {
		return err
	}
	sshArgs := append([]string{"-p", strconv.Itoa(conn.Port)}, opts...)
	sshArgs = append(sshArgs, conn.Name+"@"+cl.base.Hostname())
	cmd := exec.CommandContext(ctx, "ssh", append(sshArgs, args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.stdin, a.stdout, a.stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return exitError{ee.ExitCode()}
		}
		return fmt.Errorf("running ssh: %w", err)
	}
	return nil
}

// exitError passes on a child's exit status.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sshOptions are the ssh options that use the login's key, certificate and
// the gateway's pinned host key.
func (a *app) sshOptions() ([]string, error) {
	d, err := a.configDir()
	if err != nil {
		return nil, err
	}
	key := filepath.Join(d, "id_ed25519")
	if !fileExists(key + "-cert.pub") {
		return nil, errors.New("no SSH certificate: run gatewayctl login")
	}
	opts := []string{"-i", key, "-o", "CertificateFile=" + key + "-cert.pub", "-o", "IdentitiesOnly=yes"}
	if kh := filepath.Join(d, "known_hosts"); fileExists(kh) {
		opts = append(opts, "-o", "UserKnownHostsFile="+kh, "-o", "HostKeyAlias="+knownHostsAlias,
			"-o", "StrictHostKeyChecking=yes")
	}
	return opts, nil
}

// relayTCP copies bytes between a local client and addr.
func relayTCP(ctx context.Context, cc net.Conn, addr string) error {
	defer cc.Close()
	d := net.Dialer{Timeout: handshakeTimeout}
	up, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot reach the gateway at %s: %w", addr, err)
	}
	defer up.Close()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(up, cc); _ = up.(*net.TCPConn).CloseWrite(); errc <- err }()
	go func() { _, err := io.Copy(cc, up); errc <- err }()
	select {
	case <-errc:
	case <-ctx.Done():
	}
	return nil
}
