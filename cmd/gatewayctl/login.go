package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/core/identity/login"
)

// loginTimeout bounds a whole login: the user's time at the provider.
const loginTimeout = 10 * time.Minute

// knownHostsAlias names the gateway in gatewayctl's known_hosts file
// (ssh -o HostKeyAlias).
const knownHostsAlias = "gatewayd"

// credentials is what login stores (0600) in the config directory.
type credentials struct {
	Gateway   string         `json:"gateway"`
	Token     string         `json:"token"`
	Expires   time.Time      `json:"expires"`
	Name      string         `json:"name"`
	Email     string         `json:"email"`
	Groups    []string       `json:"groups"`
	Listeners map[string]int `json:"listeners,omitempty"`
	// CACert is the --cacert login was given, if any.
	CACert string `json:"cacert,omitempty"`
}

// configDir is where gatewayctl keeps the credentials and SSH key:
// $GATEWAYD_CONFIG_DIR, else $XDG_CONFIG_HOME/gatewayd, else
// ~/.config/gatewayd.
func (a *app) configDir() (string, error) {
	if d := a.getenv("GATEWAYD_CONFIG_DIR"); d != "" {
		return d, nil
	}
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "gatewayd"), nil
	}
	home := a.getenv("HOME")
	if home == "" {
		return "", errors.New("cannot find a config directory: set HOME or GATEWAYD_CONFIG_DIR")
	}
	return filepath.Join(home, ".config", "gatewayd"), nil
}

func (a *app) credentialsFile() (string, error) {
	d, err := a.configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "credentials.json"), nil
}

// loadCredentials reads the stored login; nil when there is none.
func (a *app) loadCredentials() (*credentials, error) {
	f, err := a.credentialsFile()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(f)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the stored login: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("reading the stored login %s: %w", f, err)
	}
	return &c, nil
}

// storedToken returns the token of the stored login, "" when there is
// none or it belongs to another gateway than the one gatewayctl talks to
// (a token is never sent to another gateway), and an error when it has
// expired.
func (a *app) storedToken() (string, error) {
	c, err := a.storedLogin()
	if c == nil {
		return "", err
	}
	return c.Token, nil
}

// storedLogin is storedToken's login: nil when there is none to use.
func (a *app) storedLogin() (*credentials, error) {
	c, err := a.loadCredentials()
	if err != nil || c == nil {
		return nil, nil
	}
	base, err := parseGateway(a.gateway)
	if err != nil || base.String() != c.Gateway {
		return nil, nil
	}
	if time.Now().After(c.Expires) {
		return nil, fmt.Errorf("your login at %s expired at %s: run gatewayctl login", c.Gateway, c.Expires.In(a.loc).Format(time.RFC3339))
	}
	return c, nil
}

// defaultsFromLogin makes the gateway (and its CA file) of the stored
// login the default, when the environment names none.
func (a *app) defaultsFromLogin() {
	c, err := a.loadCredentials()
	if err != nil || c == nil || c.Gateway == "" {
		return
	}
	a.gateway = c.Gateway
	if a.cacert == "" {
		a.cacert = c.CACert
	}
}

// writePrivate writes a file only its owner can read, atomically.
func writePrivate(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// sshKey returns gatewayctl's own SSH key pair in the config directory
// (made on first use) as the private key file and the public key line.
func (a *app) sshKey() (keyFile, pubLine string, err error) {
	d, err := a.configDir()
	if err != nil {
		return "", "", err
	}
	keyFile = filepath.Join(d, "id_ed25519")
	data, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", "", err
		}
		block, err := ssh.MarshalPrivateKey(priv, "gatewayctl")
		if err != nil {
			return "", "", err
		}
		data = pem.EncodeToMemory(block)
		if err := writePrivate(keyFile, data); err != nil {
			return "", "", fmt.Errorf("writing the SSH key: %w", err)
		}
	} else if err != nil {
		return "", "", fmt.Errorf("reading the SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return "", "", fmt.Errorf("reading the SSH key %s: %w", keyFile, err)
	}
	return keyFile, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), nil
}

// postJSON posts body to path and decodes a 200 (or want) answer into out,
// within requestTimeout.
func (c *client) postJSON(ctx context.Context, path string, body, out any, want ...int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	data, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gatewayctl/"+version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("cannot reach the gateway at %s: %w", c.base.Redacted(), err)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode == http.StatusOK
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return resp.StatusCode, c.statusError(resp)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("reading the gateway's answer to %s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

func (a *app) login(ctx context.Context, args []string) error {
	c := a.command("login", "login [--device] [--no-browser]")
	c.gatewayFlags()
	device := c.Bool("device", false, "use the device authorization flow (a headless machine)")
	noBrowser := c.Bool("no-browser", false, "print the login URL instead of opening a browser")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	cl, err := a.anonClient()
	if err != nil {
		return err
	}
	if cl.base.Scheme == "http" && !isLoopback(cl.base.Hostname()) {
		return fmt.Errorf("login: the gateway %s is not https: the token would cross the network in clear", cl.base.Redacted())
	}
	keyFile, pub, err := a.sshKey()
	if err != nil {
		return err
	}
	verifier := randomVerifier()
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	var res *login.Result
	if *device {
		res, err = a.loginDevice(ctx, cl, verifier, pub)
	} else {
		res, err = a.loginBrowser(ctx, cl, verifier, pub, !*noBrowser)
	}
	if err != nil {
		return err
	}
	return a.saveLogin(ctx, cl, res, keyFile)
}

func randomVerifier() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loginBrowser runs the browser flow: a loopback listener receives the
// one-time code the gateway redirects the browser to.
func (a *app) loginBrowser(ctx context.Context, cl *client, verifier, pub string, open bool) (*login.Result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the login callback: %w", err)
	}
	defer ln.Close()
	// A random path: another local process that finds the port cannot
	// feed gatewayctl a callback without also knowing it.
	path := "/callback/" + randomVerifier()[:16]
	redirect := fmt.Sprintf("http://%s%s", ln.Addr(), path)
	var start login.StartResponse
	if _, err := cl.postJSON(ctx, "/v1/login/start", login.StartRequest{RedirectURI: redirect,
		CodeChallenge: login.Challenge(verifier), SSHPublicKey: pub}, &start); err != nil {
		return nil, fmt.Errorf("starting the login: %w", err)
	}
	type outcome struct{ code, err string }
	got := make(chan outcome, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		o := outcome{code: q.Get("code"), err: q.Get("error")}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if o.code != "" {
			io.WriteString(w, "gatewayctl: signed in. You can close this window.\n")
		} else {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "gatewayctl: login failed: %s\n", o.err)
		}
		select {
		case got <- o:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Fprintf(a.stderr, "Sign in at:\n\n  %s\n\n", start.AuthURL)
	if open {
		if err := openBrowser(start.AuthURL); err != nil {
			fmt.Fprintf(a.stderr, "(could not open a browser: %v; open the URL above yourself)\n", err)
		}
	}
	fmt.Fprintln(a.stderr, "Waiting for the login to finish...")
	var o outcome
	select {
	case o = <-got:
	case <-ctx.Done():
		return nil, errors.New("login: timed out waiting for the browser")
	}
	if o.code == "" {
		if o.err == "" {
			o.err = "no code in the callback"
		}
		return nil, fmt.Errorf("login refused: %s", o.err)
	}
	var res login.Result
	if _, err := cl.postJSON(ctx, "/v1/login/finish", login.FinishRequest{Code: o.code, CodeVerifier: verifier}, &res); err != nil {
		return nil, fmt.Errorf("finishing the login: %w", err)
	}
	return &res, nil
}

// loginDevice runs the device flow: show the code, poll the gateway.
func (a *app) loginDevice(ctx context.Context, cl *client, verifier, pub string) (*login.Result, error) {
	var d login.DeviceResponse
	if _, err := cl.postJSON(ctx, "/v1/login/device", login.DeviceRequest{CodeChallenge: login.Challenge(verifier), SSHPublicKey: pub}, &d); err != nil {
		return nil, fmt.Errorf("starting the device login: %w", err)
	}
	if d.VerificationURIComplete != "" {
		fmt.Fprintf(a.stderr, "On any device, open:\n\n  %s\n\nand confirm the code %s\n", d.VerificationURIComplete, d.UserCode)
	} else {
		fmt.Fprintf(a.stderr, "On any device, open:\n\n  %s\n\nand enter the code %s\n", d.VerificationURI, d.UserCode)
	}
	interval := time.Duration(max(d.Interval, 1)) * time.Second
	for {
		var res login.Result
		status, err := cl.postJSON(ctx, "/v1/login/device/poll", login.PollRequest{LoginID: d.LoginID, CodeVerifier: verifier}, &res, http.StatusAccepted)
		if err != nil {
			return nil, fmt.Errorf("device login: %w", err)
		}
		if status == http.StatusOK {
			return &res, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("device login: timed out")
		case <-time.After(interval):
		}
	}
}

// saveLogin stores the token and the SSH certificate, and revokes the
// token of the login it replaces at the same gateway: a new login leaves
// no second token alive.
func (a *app) saveLogin(ctx context.Context, cl *client, res *login.Result, keyFile string) error {
	f, err := a.credentialsFile()
	if err != nil {
		return err
	}
	prev, _ := a.loadCredentials() // an unreadable old login is replaced all the same
	data, err := json.MarshalIndent(credentials{Gateway: cl.base.String(), Token: res.Token, Expires: res.Expires,
		Name: res.Name, Email: res.Email, Groups: res.Groups, Listeners: res.Listeners, CACert: absPath(a.cacert)}, "", "  ")
	if err != nil {
		return err
	}
	if err := writePrivate(f, data); err != nil {
		return fmt.Errorf("storing the login: %w", err)
	}
	if res.SSHCertificate != "" {
		if err := writePrivate(keyFile+"-cert.pub", []byte(res.SSHCertificate)); err != nil {
			return fmt.Errorf("storing the SSH certificate: %w", err)
		}
	}
	if res.SSHHostKey != "" {
		// The gateway's host key, learnt over the API: gatewayctl ssh pins
		// it instead of trusting the first key it sees.
		line := knownHostsAlias + " " + strings.TrimSpace(res.SSHHostKey) + "\n"
		if err := writePrivate(filepath.Join(filepath.Dir(keyFile), "known_hosts"), []byte(line)); err != nil {
			return fmt.Errorf("storing the gateway's SSH host key: %w", err)
		}
	}
	fmt.Fprintf(a.stdout, "Signed in as %s (groups: %s) until %s.\n", res.Name, orDash(strings.Join(res.Groups, ", ")),
		res.Expires.In(a.loc).Format(time.RFC3339))
	if prev != nil && prev.Token != res.Token && prev.Gateway == cl.base.String() && time.Now().Before(prev.Expires) {
		old, err := a.newClient(prev.Token)
		if err == nil {
			err = old.revoke(ctx)
		}
		if err != nil {
			fmt.Fprintf(a.stderr, "gatewayctl: the previous login's token could not be revoked (%v); it stays valid until %s\n",
				err, prev.Expires.In(a.loc).Format(time.RFC3339))
		} else {
			fmt.Fprintln(a.stdout, "The previous login's token is revoked.")
		}
	}
	if res.SSHCertificate != "" {
		fmt.Fprintf(a.stdout, "SSH certificate: %s-cert.pub (ssh -i %s ...)\n", keyFile, keyFile)
	}
	return nil
}

// openBrowser asks the desktop to open u.
func openBrowser(u string) error {
	for _, cmd := range []string{"xdg-open", "open"} {
		if p, err := exec.LookPath(cmd); err == nil {
			return exec.Command(p, u).Start()
		}
	}
	return errors.New("no xdg-open or open")
}

// anonClient is an API client for the login routes, which need no token.
func (a *app) anonClient() (*client, error) {
	return a.newClient("")
}

// revoke revokes the stored login's token c carries at the gateway
// (POST /v1/logout).
func (c *client) revoke(ctx context.Context) error {
	c.fromLogin = true
	_, err := c.postJSON(ctx, "/v1/logout", struct{}{}, nil, http.StatusNoContent)
	return err
}

func (a *app) logout(ctx context.Context, args []string) error {
	c := a.command("logout", "logout")
	c.gatewayFlags()
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	creds, err := a.loadCredentials()
	if err != nil {
		return err
	}
	if creds == nil {
		return errors.New("not signed in")
	}
	if base, err := parseGateway(a.gateway); err != nil || base.String() != creds.Gateway {
		return fmt.Errorf("the stored login is for %s, not %s: run logout with --gateway %s", creds.Gateway, a.gateway, creds.Gateway)
	}
	cl, err := a.newClient(creds.Token)
	if err != nil {
		return err
	}
	rerr := cl.revoke(ctx)
	f, _ := a.credentialsFile()
	if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stored login: %w", err)
	}
	if d, err := a.configDir(); err == nil {
		_ = os.Remove(filepath.Join(d, "id_ed25519-cert.pub"))
	}
	switch {
	case !time.Now().Before(creds.Expires):
		fmt.Fprintln(a.stdout, "Signed out; the token had expired.")
	case rerr != nil:
		return fmt.Errorf("the stored login is removed, but the gateway did not confirm the token's revocation: %w", rerr)
	default:
		fmt.Fprintln(a.stdout, "Signed out; the token is revoked.")
	}
	return nil
}

func (a *app) ls(ctx context.Context, args []string) error {
	c := a.command("ls", "ls [--json]")
	c.gatewayFlags()
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	var list login.ConnectionList
	if err := cl.getJSON(ctx, requestTimeout, "/v1/connections", nil, &list); err != nil {
		return fmt.Errorf("listing connections: %w", err)
	}
	if *asJSON {
		return printJSON(a.stdout, list)
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "NAME\tPROTOCOL\tPORT")
	for _, cn := range list.Connections {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", cell(cn.Name, 0), cn.Protocol, cn.Port)
	}
	return tw.Flush()
}

// absPath makes a file name absolute, so that it works from any directory
// later ("" stays "").
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
