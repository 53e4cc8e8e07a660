package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/core/api"
)

// requestTimeout bounds the short API calls (lists, a session). Verify and
// export can run as long as the log is big; Ctrl-C ends them.
const requestTimeout = time.Minute

// errRefused is the message of a 401: the gateway does not know the token.
var errRefused = errors.New("gateway refused the token (set GATEWAYD_TOKEN)")

// errLoginRefused is the message of a 401 to the token of the stored
// login.
var errLoginRefused = errors.New("gateway refused the token of your login (revoked or no longer valid): run gatewayctl login")

// client calls gatewayd's API with the caller's token.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
	// fromLogin says that token is the stored login's.
	fromLogin bool
}

// client builds an API client from the settings; it refuses to run without
// a token.
func (a *app) client() (*client, error) {
	token := strings.TrimSpace(a.getenv("GATEWAYD_TOKEN"))
	fromLogin := false
	if token == "" {
		var err error
		if token, err = a.storedToken(); err != nil { // from gatewayctl login
			return nil, err
		}
		fromLogin = token != ""
	}
	if token == "" {
		return nil, errors.New("GATEWAYD_TOKEN is not set: export the gateway token you were given, or run gatewayctl login")
	}
	c, err := a.newClient(token)
	if err != nil {
		return nil, err
	}
	c.fromLogin = fromLogin
	return c, nil
}

// newClient builds an API client that sends token ("" sends none).
func (a *app) newClient(token string) (*client, error) {
	base, err := parseGateway(a.gateway)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if base.Scheme == "https" && a.cacert != "" {
		pem, err := os.ReadFile(a.cacert)
		if err != nil {
			return nil, fmt.Errorf("reading CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading CA certificates: no PEM certificate in %s", a.cacert)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if base.Scheme == "http" && !isLoopback(base.Hostname()) {
		fmt.Fprintf(a.stderr, "gatewayctl: warning: sending your token unencrypted to %s; use an https:// gateway URL\n", base.Host)
	}
	return &client{base: base, token: token, http: &http.Client{
		Transport: tr,
		// A redirect would carry the request elsewhere; the API never
		// redirects, so treat one as an error rather than follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// parseGateway accepts "http(s)://host:port[/prefix]" or a bare "host:port"
// (taken as http).
func parseGateway(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return nil, fmt.Errorf("the gateway address %q is not an http:// or https:// URL", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// get sends GET path?q (path escaped) and returns the response when it is a 200; any other
// status becomes an error. The caller closes the body.
func (c *client) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	raw := c.base.String() + path // path is escaped already
	if len(q) > 0 {
		raw += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", "gatewayctl/"+version)
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named below, once
		}
		return nil, fmt.Errorf("cannot reach the gateway at %s: %w", c.base.Redacted(), err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, c.statusError(resp)
}

// statusError is statusError, saying to sign in again when the gateway
// refuses the stored login's token.
func (c *client) statusError(resp *http.Response) error {
	err := statusError(resp)
	if c.fromLogin && errors.Is(err, errRefused) {
		return errLoginRefused
	}
	return err
}

// getJSON sends GET path?q and decodes the JSON answer into out, within
// timeout unless it is 0.
func (c *client) getJSON(ctx context.Context, timeout time.Duration, path string, q url.Values, out any) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the gateway's answer to %s: %w", path, err)
	}
	return nil
}

// statusError turns a non-200 answer into an error in the user's terms.
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := ""
	var e api.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	} else {
		msg, _, _ = strings.Cut(string(bytes.TrimSpace(body)), "\n")
	}
	msg = cell(msg, 200)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return errRefused
	case http.StatusForbidden:
		return fmt.Errorf("gateway: permission denied: %s", msg)
	case http.StatusNotFound:
		return fmt.Errorf("gateway: %s", msg)
	default:
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return fmt.Errorf("gateway answered HTTP %d: %s", resp.StatusCode, msg)
	}
}
