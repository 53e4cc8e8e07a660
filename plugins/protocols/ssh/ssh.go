package ssh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// ProtocolName is the protocol this handler speaks, as written in a
// connection's protocol key.
const ProtocolName = "ssh"

// Defaults for zero Options fields.
const (
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultMaxChannels      = 16
)

// Options configures a Handler.
type Options struct {
	// HostKeys are the gateway's own host keys. At least one is required.
	HostKeys []gossh.Signer
	// HandshakeTimeout bounds key exchange and authentication.
	HandshakeTimeout time.Duration
	// Ciphers are the ciphers clients may use; nil means AES-GCM only.
	Ciphers []string
	// MaxChannels bounds the channels open at once in one connection.
	MaxChannels int
	// Logger receives the handler's logs. Credentials are never logged.
	Logger *slog.Logger
}

// Handler serves SSH clients. It is safe for concurrent use.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if len(opts.HostKeys) == 0 {
		return nil, errors.New("ssh: no host key")
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.MaxChannels <= 0 {
		opts.MaxChannels = DefaultMaxChannels
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{opts: opts, log: opts.Logger.With("protocol", ProtocolName)}, nil
}

// DefaultCiphers are the ciphers clients may use unless Options say.
var DefaultCiphers = []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM}

func (h *Handler) ciphers() []string {
	if len(h.opts.Ciphers) > 0 {
		return h.opts.Ciphers
	}
	return DefaultCiphers
}

// permIdentity is the Permissions extension carrying the identity of the
// authentication that succeeded.
const permIdentity = "gatewayd-identity"

// Serve handles one client connection until it ends.
func (h *Handler) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	defer conn.Close()
	addr := conn.RemoteAddr().String()
	log := h.log.With("client", addr)
	_ = conn.SetDeadline(time.Now().Add(h.opts.HandshakeTimeout))

	// authed is the credential of the authentication that succeeded: new
	// channels of the connection check it again, so that a token revoked
	// (or a certificate expired) since opens nothing more.
	var authed protocol.AuthenticateRequest
	auth := func(req protocol.AuthenticateRequest) (*gossh.Permissions, error) {
		req.Protocol, req.ClientAddr = ProtocolName, addr
		resp, err := host.Authenticate(ctx, req)
		if err != nil {
			if !errors.Is(err, protocol.ErrUnauthenticated) {
				log.Error("authenticating", "error", err)
			}
			return nil, errors.New("authentication failed")
		}
		authed = req
		id, err := json.Marshal(resp.Identity)
		if err != nil {
			return nil, err
		}
		return &gossh.Permissions{Extensions: map[string]string{permIdentity: string(id)}}, nil
	}
	cfg := &gossh.ServerConfig{
		ServerVersion: "SSH-2.0-gatewayd",
		// The client's preference picks the cipher, and OpenSSH prefers
		// ChaCha20-Poly1305 (which x/crypto/ssh runs in plain Go), then
		// AES-CTR with an HMAC. Offering only AES-GCM has every common
		// client use AES instructions for both: the relay then costs a
		// third less CPU per byte.
		Config:       gossh.Config{Ciphers: h.ciphers()},
		MaxAuthTries: 6,
		// Called for a key offered without a signature too, so it only
		// says "prove it": the identity comes from
		// VerifiedPublicKeyCallback, after the signature has been checked,
		// and only from the authentication that succeeded. Answering every
		// key alike also tells a prober nothing about which keys are
		// registered. A user certificate goes to the host like a key:
		// the core accepts those its own user CA signed and refuses every
		// other.
		PublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			return nil, nil
		},
		VerifiedPublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (*gossh.Permissions, error) {
			return auth(protocol.AuthenticateRequest{PublicKey: gossh.MarshalAuthorizedKey(key)})
		},
		PasswordCallback: func(_ gossh.ConnMetadata, pw []byte) (*gossh.Permissions, error) {
			p, err := auth(protocol.AuthenticateRequest{Password: secret.NewValue(pw)})
			clear(pw)
			return p, err
		},
	}
	for _, k := range h.opts.HostKeys {
		cfg.AddHostKey(k)
	}
	sconn, chans, reqs, err := gossh.NewServerConn(conn, cfg)
	if err != nil {
		log.Info("ssh handshake failed", "error", err)
		h.event(ctx, host, "", addr, "handshake.failed", map[string]string{"error": err.Error()})
		return nil
	}
	defer sconn.Close()
	_ = conn.SetDeadline(time.Time{})
	var ident protocol.Identity
	if err := json.Unmarshal([]byte(sconn.Permissions.Extensions[permIdentity]), &ident); err != nil || ident.Name == "" {
		// Cannot happen: every successful callback sets it.
		log.Error("no identity after authentication")
		return nil
	}
	c := &clientConn{h: h, host: host, log: log.With("user", ident.Name, "connection", sconn.User()),
		sconn: sconn, identity: ident, cred: authed, checked: time.Now(), addr: addr, slots: make(chan struct{}, h.opts.MaxChannels), gone: make(chan struct{})}
	return c.serve(ctx, chans, reqs)
}

func (h *Handler) event(ctx context.Context, host protocol.Host, session, addr, kind string, detail map[string]string) {
	if err := host.RecordEvent(context.WithoutCancel(ctx), protocol.Event{Kind: kind, SessionID: session, ClientAddr: addr, Detail: detail}); err != nil {
		h.log.Error("recording protocol event", "event", kind, "error", err)
	}
}

// clientConn is one authenticated client connection: one gateway session
// and one upstream connection, opened with the first session channel.
type clientConn struct {
	h        *Handler
	host     protocol.Host
	log      *slog.Logger
	sconn    *gossh.ServerConn
	identity protocol.Identity
	// cred is the credential the client authenticated with, last checked
	// at checked (under mu); channels and forwards are only opened while
	// it is still valid.
	cred    protocol.AuthenticateRequest
	checked time.Time
	addr    string
	slots   chan struct{}

	remoteOnce sync.Once      // serving the target's forwarded-tcpip channels
	remoteWG   sync.WaitGroup // forwarded-tcpip channels being relayed

	mu        sync.Mutex
	sessionID string
	masking   abi.Subscription
	forwards  []string        // allowed port-forwarding destinations
	remotes   []string        // allowed remote-forwarding listen addresses
	remote    map[string]bool // remote forwards set up, "host:port"
	closing   bool            // no new forwarded channels
	up        *gossh.Client
	openErr   error // why the session could not be opened, for every channel
	opened    bool
	bytesIn   int64
	bytesOut  int64
	requests  int64
	// channels are the open session channels; expiry ends them when the
	// session's access grant runs out.
	channels map[*channel]struct{}
	expiry   *time.Timer
	// gone is closed once the client connection has ended.
	gone chan struct{}
}

func (c *clientConn) serve(ctx context.Context, chans <-chan gossh.NewChannel, reqs <-chan *gossh.Request) error {
	go func() {
		for req := range reqs {
			// Global requests, answered in order: remote forwarding as
			// the connection allows; anything else (keepalives among
			// them) gets the negative answer OpenSSH expects.
			switch req.Type {
			case "tcpip-forward":
				c.tcpipForward(ctx, req)
			case "cancel-tcpip-forward":
				c.cancelTCPIPForward(ctx, req)
			default:
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	refused := 0
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = c.sconn.Close()
		case <-done:
		}
	}()
	for nc := range chans {
		if t := nc.ChannelType(); (t == "session" || t == "direct-tcpip") && !c.credentialValid(ctx) {
			if t == "session" {
				c.refuseChannel(nc, msgSignInInvalid)
			} else {
				_ = nc.Reject(gossh.Prohibited, msgSignInInvalid)
			}
			continue
		}
		switch nc.ChannelType() {
		case "session":
			c.spawn(&wg, nc, func() { c.session(ctx, nc) })
		case "direct-tcpip":
			// The connection's allow-list is known once the session is
			// open (it comes with the target).
			if _, err := c.open(ctx); err != nil || len(c.allowForward()) == 0 {
				_ = nc.Reject(gossh.Prohibited, "port forwarding is not allowed through gatewayd")
				if refused++; refused <= 10 {
					c.event(ctx, "forward.refused", map[string]string{"channel": "direct-tcpip"})
				}
				continue
			}
			c.spawn(&wg, nc, func() { c.forward(ctx, nc, c.allowForward()) })
		default:
			_ = nc.Reject(gossh.UnknownChannelType, "channel type not allowed through gatewayd")
			if refused++; refused <= 10 {
				c.event(ctx, "channel.refused", map[string]string{"channel": nc.ChannelType()})
			}
		}
	}
	close(done)
	close(c.gone)
	// The client is gone: end the upstream connection now, as the client
	// ending its own connection to the target would, rather than wait
	// for the commands to finish their output.
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	if up != nil {
		_ = up.Close()
	}
	wg.Wait()
	c.close(ctx)
	return nil
}

// spawn serves a channel with fn in its own goroutine, tracked by wg, within
// the connection's channel limit; past the limit the channel is refused.
func (c *clientConn) spawn(wg *sync.WaitGroup, nc gossh.NewChannel, fn func()) {
	select {
	case c.slots <- struct{}{}:
	default:
		_ = nc.Reject(gossh.ResourceShortage, "too many channels open")
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-c.slots }()
		fn()
	}()
}

// recheckAfter is how long a connection's credential is taken as still
// valid after it was last checked: a channel opened later checks it again.
// The channels a client opens right after authenticating, or in a burst
// (port forwards), cost one check.
const recheckAfter = time.Second

// msgSignInInvalid is what a client hears when its credential no longer
// holds for a new channel or forward.
const msgSignInInvalid = "your sign-in is no longer valid (the token was revoked or has expired): sign in again (gatewayctl login)"

// credentialValid reports whether the connection's credential still holds,
// checking it again when it was last checked recheckAfter or more ago.
func (c *clientConn) credentialValid(ctx context.Context) bool {
	c.mu.Lock()
	fresh := time.Since(c.checked) < recheckAfter
	c.mu.Unlock()
	if fresh {
		return true
	}
	if !c.stillValid(ctx) {
		return false
	}
	c.mu.Lock()
	c.checked = time.Now()
	c.mu.Unlock()
	return true
}

// stillValid checks the connection's credential again, for a channel
// opened recheckAfter or more after the last check: an open connection (an
// OpenSSH ControlMaster among them) must not outlive the revocation or
// expiry of the token or certificate it was opened with for new commands.
func (c *clientConn) stillValid(ctx context.Context) bool {
	_, err := c.host.Authenticate(ctx, c.cred)
	if err != nil && !errors.Is(err, protocol.ErrUnauthenticated) {
		c.log.Error("checking the credential again", "error", err)
	}
	return err == nil
}

// open opens the gateway session and the upstream connection, once.
func (c *clientConn) open(ctx context.Context) (*gossh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opened {
		return c.up, c.openErr
	}
	c.opened = true
	resp, err := c.host.OpenSession(ctx, protocol.OpenSessionRequest{
		Protocol:   ProtocolName,
		ClientAddr: c.addr,
		Identity:   c.identity,
		Connection: c.sconn.User(),
		TLS:        true, // SSH is always encrypted
		Attributes: map[string]string{"client_version": string(c.sconn.ClientVersion())},
	})
	if err != nil {
		if errors.Is(err, protocol.ErrApprovalRequired) {
			c.openErr = fmt.Errorf("connection %q requires an approved access request: run gatewayctl request %s --for DURATION --reason TEXT, and connect once a reviewer approved it", c.sconn.User(), c.sconn.User())
		} else if errors.Is(err, protocol.ErrNoAccess) {
			c.openErr = fmt.Errorf("connection %q does not exist or you may not use it", c.sconn.User())
		} else {
			c.log.Error("opening session", "error", err)
			c.openErr = errors.New("gatewayd cannot open a session now")
		}
		return nil, c.openErr
	}
	c.sessionID = resp.SessionID
	c.masking = resp.Masking
	c.forwards = resp.Target.AllowForward
	c.remotes = resp.Target.AllowRemoteForward
	c.log = c.log.With("session", c.sessionID)
	if na := resp.NotAfter; !na.IsZero() {
		reason := resp.EndReason
		c.expiry = time.AfterFunc(time.Until(na), func() { c.expire(na, reason) })
	}
	up, err := dialUpstream(ctx, resp.Target)
	if err != nil {
		c.log.Warn("upstream connect failed", "error", err)
		c.h.event(ctx, c.host, c.sessionID, c.addr, "upstream.failed", map[string]string{"error": err.Error()})
		c.openErr = upstreamError(resp.Target.Connection, err)
		return nil, c.openErr
	}
	c.up = up
	c.log.Info("session started")
	return up, nil
}

func (c *clientConn) allowForward() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.forwards
}

func (c *clientConn) allowRemoteForward() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remotes
}

func (c *clientConn) close(ctx context.Context) {
	c.mu.Lock()
	c.closing = true
	up := c.up
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.mu.Unlock()
	if up != nil {
		_ = up.Close()
	}
	c.remoteWG.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessionID == "" {
		return
	}
	if err := c.host.CloseSession(context.WithoutCancel(ctx), protocol.CloseSessionRequest{
		SessionID: c.sessionID, Reason: "client closed", BytesIn: c.bytesIn, BytesOut: c.bytesOut, RequestCount: c.requests,
	}); err != nil {
		c.log.Error("closing session", "error", err)
	}
	c.log.Info("session ended", "bytes_in", c.bytesIn, "bytes_out", c.bytesOut, "requests", c.requests)
}

func (c *clientConn) event(ctx context.Context, kind string, detail map[string]string) {
	c.mu.Lock()
	id := c.sessionID
	c.mu.Unlock()
	c.h.event(ctx, c.host, id, c.addr, kind, detail)
}
