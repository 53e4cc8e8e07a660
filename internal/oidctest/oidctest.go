// Package oidctest runs a real OpenID provider for tests: zitadel/oidc's
// example OP on a free loopback port, with users that have groups (its
// storage extended to put email and a groups claim in ID tokens), and a
// "browser" that signs in through its login form.
package oidctest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Password is every test user's password.
const Password = "correct horse battery staple"

// User is a test user: ID and username are the same (the example OP's
// device flow takes the username as the subject).
type User struct {
	Username string
	Email    string
	Groups   []string
}

// Options configure a provider.
type Options struct {
	ClientID, ClientSecret string
	// RedirectURIs are the client's registered redirect URIs.
	RedirectURIs []string
	Users        []User
	// UserinfoOnly leaves email and groups out of ID tokens: only the
	// userinfo endpoint tells them (as OIDC Core has it when an access
	// token is issued).
	UserinfoOnly bool
}

// Provider is a running OP.
type Provider struct {
	Issuer string
	srv    *http.Server
	ln     net.Listener
}

// Start runs the OP until the test ends.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	users := userStore{users: map[string]*storage.User{}, groups: map[string][]string{}}
	for _, u := range opts.Users {
		users.users[u.Username] = &storage.User{ID: u.Username, Username: u.Username, Password: Password,
			FirstName: u.Username, LastName: "Test", Email: u.Email, EmailVerified: true, PreferredLanguage: language.English}
		users.groups[u.Username] = u.Groups
	}
	web := storage.WebClient(opts.ClientID, opts.ClientSecret, opts.RedirectURIs...)
	// The web client type takes the code grant and refresh; the device
	// grant is added by a second registration under the same id below.
	clients := map[string]*storage.Client{opts.ClientID: web}
	st := &groupStorage{Storage: storage.NewStorageWithClients(users, clients), users: users, userinfoOnly: opts.UserinfoOnly}
	router := exampleop.SetupServer(issuer, st, nil, false)
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	p := &Provider{Issuer: issuer, srv: srv, ln: ln}
	t.Cleanup(func() { p.Stop() })
	return p
}

// Stop shuts the provider down (an unreachable IdP).
func (p *Provider) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}

type userStore struct {
	users  map[string]*storage.User
	groups map[string][]string
}

func (u userStore) GetUserByID(id string) *storage.User { return u.users[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	return u.users[name]
}
func (u userStore) ExampleClientID() string { return "service" }

// groupStorage puts email and groups in every userinfo answer and, unless
// userinfoOnly, in every ID token.
type groupStorage struct {
	*storage.Storage
	users        userStore
	userinfoOnly bool
}

func (s *groupStorage) addClaims(info *oidc.UserInfo, subject string) {
	u := s.users.users[subject]
	if u == nil {
		return
	}
	info.Subject = u.ID
	info.Email = u.Email
	info.EmailVerified = oidc.Bool(u.EmailVerified)
	info.AppendClaims("groups", s.users.groups[subject])
}

func (s *groupStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	if !s.userinfoOnly {
		s.addClaims(info, req.GetSubject())
	}
	return nil
}

func (s *groupStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	s.addClaims(info, subject)
	return nil
}

// Browser is a user agent with cookies that signs in through the OP's
// login form, following every redirect like a browser would.
type Browser struct {
	http *http.Client
}

// NewBrowser returns a Browser.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]*)"`)

// NewBrowserTrusting returns a Browser that also trusts the PEM
// certificates in caFile (a gateway's self-signed API certificate).
func NewBrowserTrusting(t testing.TB, caFile string) *Browser {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	b := NewBrowser()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	b.http.Transport = tr
	return b
}

// Login opens authURL, fills in the login form as username and follows
// the redirects to the end (the gateway's callback, then the client's
// loopback page). It returns the final URL and page.
func (b *Browser) Login(authURL, username string) (*url.URL, string, error) {
	resp, err := b.http.Get(authURL)
	if err != nil {
		return nil, "", fmt.Errorf("opening the login page: %w", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := hiddenID.FindSubmatch(page)
	if m == nil {
		return nil, "", fmt.Errorf("no login form at %s (HTTP %d): %.300s", resp.Request.URL, resp.StatusCode, page)
	}
	form := url.Values{"id": {html.UnescapeString(string(m[1]))}, "username": {username}, "password": {Password}}
	action := resp.Request.URL.ResolveReference(&url.URL{Path: "/login/username"})
	resp, err = b.http.PostForm(action.String(), form)
	if err != nil {
		return nil, "", fmt.Errorf("posting the login form: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Request.URL, string(body), nil
}

// Get follows a URL like a browser (for replaying a callback).
func (b *Browser) Get(u string) (int, string, error) {
	resp, err := b.http.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// NoRedirects returns a copy that stops at the first redirect, so that a
// test can see (and replay) the provider's redirect to the gateway.
func (b *Browser) NoRedirects() *Browser {
	c := *b.http
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Browser{http: &c}
}

// LoginUntil signs in like Login, but stops following redirects at the
// first one whose target starts with prefix, and returns that target.
func (b *Browser) LoginUntil(authURL, username, prefix string) (string, error) {
	c := *b.http
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), prefix) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	bb := &Browser{http: &c}
	resp, err := bb.http.Get(authURL)
	if err != nil {
		return "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := hiddenID.FindSubmatch(page)
	if m == nil {
		return "", errors.New("no login form")
	}
	form := url.Values{"id": {html.UnescapeString(string(m[1]))}, "username": {username}, "password": {Password}}
	action := resp.Request.URL.ResolveReference(&url.URL{Path: "/login/username"})
	resp, err = bb.http.PostForm(action.String(), form)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("no redirect to %s (HTTP %d)", prefix, resp.StatusCode)
	}
	return loc, nil
}

// GetResponse sends a GET and returns the response with its body read
// and closed.
func (b *Browser) GetResponse(u string) (*http.Response, error) {
	resp, err := b.http.Get(u)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// GetClientByClientID lets the client use the device authorization grant
// too (the example's web client has the code grant only).
func (s *groupStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return deviceToo{c}, nil
}

type deviceToo struct{ op.Client }

func (c deviceToo) GrantTypes() []oidc.GrantType {
	return append(c.Client.GrantTypes(), oidc.GrantTypeDeviceCode)
}

// ConfirmDevice signs in as username on the OP's device page and allows
// the device login of userCode.
func (b *Browser) ConfirmDevice(issuer, userCode, username string) error {
	resp, err := b.http.PostForm(issuer+"/device/login", url.Values{
		"user_code": {userCode}, "username": {username}, "password": {Password}})
	if err != nil {
		return fmt.Errorf("device login: %w", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "confirm") {
		return fmt.Errorf("device login: HTTP %d: %.300s", resp.StatusCode, page)
	}
	resp, err = b.http.PostForm(issuer+"/device/confirm", url.Values{"action": {"allowed"}})
	if err != nil {
		return fmt.Errorf("device confirm: %w", err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("device confirm: HTTP %d: %.300s", resp.StatusCode, page)
	}
	return nil
}
