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

// permIdentity is the Permissions extension carrying the identity of the
// authentication that succeeded.
const permIdentity = "gatewayd-identity"

// Serve handles one client connection until it ends.
func (h *Handler) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	defer conn.Close()
	addr := conn.RemoteAddr().String()
	log := h.log.With("client", addr)
	_ = conn.SetDeadline(time.Now().Add(h.opts.HandshakeTimeout))

	auth := func(req protocol.AuthenticateRequest) (*gossh.Permissions, error) {
		req.Protocol, req.ClientAddr = ProtocolName, addr
		resp, err := host.Authenticate(ctx, req)
		if err != nil {
			if !errors.Is(err, protocol.ErrUnauthenticated) {
				log.Error("authenticating", "error", err)
			}
			return nil, errors.New("authentication failed")
		}
		id, err := json.Marshal(resp.Identity)
		if err != nil {
			return nil, err
		}
		return &gossh.Permissions{Extensions: map[string]string{permIdentity: string(id)}}, nil
	}
	cfg := &gossh.ServerConfig{
		ServerVersion: "SSH-2.0-gatewayd",
		MaxAuthTries:  6,
		// Called for a key offered without a signature too: x/crypto/ssh
		// uses the Permissions of the call whose signature it then
		// verifies, and only those become sconn.Permissions.
		PublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if _, ok := key.(*gossh.Certificate); ok {
				return nil, errors.New("certificates are not accepted")
			}
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
		sconn: sconn, identity: ident, addr: addr, slots: make(chan struct{}, h.opts.MaxChannels), gone: make(chan struct{})}
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
	addr     string
	slots    chan struct{}

	mu        sync.Mutex
	sessionID string
	masking   abi.Subscription
	forwards  []string // allowed port-forwarding destinations
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
			// Global requests: tcpip-forward and the like are refused;
			// keepalives get the negative answer OpenSSH expects.
			if req.Type == "tcpip-forward" || req.Type == "cancel-tcpip-forward" {
				c.event(ctx, "forward.refused", map[string]string{"request": req.Type})
			}
			if req.WantReply {
				_ = req.Reply(false, nil)
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
		switch nc.ChannelType() {
		case "session":
			select {
			case c.slots <- struct{}{}:
			default:
				_ = nc.Reject(gossh.ResourceShortage, "too many channels open")
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-c.slots }()
				c.session(ctx, nc)
			}()
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
			select {
			case c.slots <- struct{}{}:
			default:
				_ = nc.Reject(gossh.ResourceShortage, "too many channels open")
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-c.slots }()
				c.forward(ctx, nc, c.allowForward())
			}()
		default:
			_ = nc.Reject(gossh.UnknownChannelType, "channel type not allowed through gatewayd")
			if refused++; refused <= 10 {
				c.event(ctx, "channel.refused", map[string]string{"channel": nc.ChannelType()})
			}
		}
	}
	close(done)
	close(c.gone)
	wg.Wait()
	c.close(ctx)
	return nil
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
	c.log = c.log.With("session", c.sessionID)
	if na := resp.NotAfter; !na.IsZero() {
		c.expiry = time.AfterFunc(time.Until(na), func() { c.expire(na) })
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

func (c *clientConn) close(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.up != nil {
		_ = c.up.Close()
	}
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
