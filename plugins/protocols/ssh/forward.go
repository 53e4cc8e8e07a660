package ssh

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// forwardAllowed reports whether a direct-tcpip destination passes the
// connection's allow_forward list. Link-local addresses (cloud metadata
// services among them) are refused whatever the list says.
func forwardAllowed(allow []string, host string, port uint32) bool {
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified()) {
		return false
	}
	return listAllows(allow, host, port)
}

// remoteForwardAllowed reports whether the client may have the target
// listen on host:port (tcpip-forward), by the connection's
// allow_remote_forward list. Port 0, "any free port", passes only "*".
func remoteForwardAllowed(allow []string, host string, port uint32) bool {
	return listAllows(allow, host, port)
}

// listAllows matches host:port against "host:port" entries whose host is
// an IP address, a CIDR block or a name (compared as written) and whose
// port is a number or "*".
func listAllows(allow []string, host string, port uint32) bool {
	ip := net.ParseIP(host)
	for _, a := range allow {
		h, p, err := net.SplitHostPort(a)
		if err != nil || p != "*" && p != strconv.FormatUint(uint64(port), 10) {
			continue
		}
		if _, block, err := net.ParseCIDR(h); err == nil {
			if ip != nil && block.Contains(ip) {
				return true
			}
			continue
		}
		if h == host {
			return true
		}
	}
	return false
}

// forward serves a direct-tcpip channel (ssh -L) the connection allows:
// the target opens the connection, bytes are relayed both ways.
func (c *clientConn) forward(ctx context.Context, nc gossh.NewChannel, allow []string) {
	host, port, _, ok := parseHostPort(nc.ExtraData())
	dest := net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
	if !ok || !forwardAllowed(allow, host, port) {
		_ = nc.Reject(gossh.Prohibited, "port forwarding to "+dest+" is not allowed through gatewayd")
		c.event(ctx, "forward.refused", map[string]string{"channel": "direct-tcpip", "destination": dest})
		return
	}
	up, err := c.open(ctx)
	if err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, err.Error())
		return
	}
	if reason := c.admitForward(ctx, "local", dest); reason != "" {
		_ = nc.Reject(gossh.Prohibited, reason)
		return
	}
	uch, ureqs, err := up.OpenChannel("direct-tcpip", nc.ExtraData())
	if err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "the target could not connect to "+dest)
		c.event(ctx, "forward.failed", map[string]string{"destination": dest})
		return
	}
	ch, creqs, err := nc.Accept()
	if err != nil {
		_ = uch.Close()
		return
	}
	c.event(ctx, "forward.opened", map[string]string{"destination": dest})
	c.relay(ch, creqs, uch, ureqs)
}

// relay copies a forwarding channel's bytes both ways until both ends are
// done, counting them for the session.
func (c *clientConn) relay(ch gossh.Channel, creqs <-chan *gossh.Request, uch gossh.Channel, ureqs <-chan *gossh.Request) {
	go gossh.DiscardRequests(ureqs)
	go gossh.DiscardRequests(creqs)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		n, _ := io.Copy(uch, ch)
		c.addBytes(n, 0)
		_ = uch.CloseWrite()
	}()
	go func() {
		defer wg.Done()
		n, _ := io.Copy(ch, uch)
		c.addBytes(0, n)
		_ = ch.CloseWrite()
	}()
	wg.Wait()
	_ = ch.Close()
	_ = uch.Close()
}

// parseHostPort reads an SSH string and a uint32 port, the start of
// tcpip-forward requests and forwarded-tcpip channel data.
func parseHostPort(b []byte) (host string, port uint32, rest []byte, ok bool) {
	host, rest, ok = sshString(b)
	if !ok || len(rest) < 4 {
		return "", 0, nil, false
	}
	return host, binary.BigEndian.Uint32(rest), rest[4:], true
}

func hostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// tcpipForward answers a tcpip-forward request (ssh -R). When the
// connection allows the address, the target is asked to listen on it, and
// the connections it accepts come back to the client as forwarded-tcpip
// channels (see forwarded).
func (c *clientConn) tcpipForward(ctx context.Context, req *gossh.Request) {
	host, port, rest, ok := parseHostPort(req.Payload)
	if !ok || len(rest) != 0 {
		_ = req.Reply(false, nil)
		return
	}
	listen := hostPort(host, port)
	if !c.credentialValid(ctx) {
		_ = req.Reply(false, nil)
		c.event(ctx, "forward.refused", map[string]string{"request": "tcpip-forward", "listen": listen, "reason": "sign-in no longer valid"})
		return
	}
	up, err := c.open(ctx)
	if err != nil || !remoteForwardAllowed(c.allowRemoteForward(), host, port) {
		_ = req.Reply(false, nil)
		c.event(ctx, "forward.refused", map[string]string{"request": "tcpip-forward", "listen": listen})
		return
	}
	if reason := c.admitForward(ctx, "remote", listen); reason != "" {
		_ = req.Reply(false, nil)
		return
	}
	c.remoteOnce.Do(func() {
		chans := up.HandleChannelOpen("forwarded-tcpip")
		go func() {
			for nc := range chans {
				c.forwarded(ctx, nc)
			}
		}()
	})
	accepted, reply, err := up.SendRequest("tcpip-forward", true, req.Payload)
	if err != nil || !accepted {
		_ = req.Reply(false, nil)
		c.event(ctx, "forward.failed", map[string]string{"request": "tcpip-forward", "listen": listen})
		return
	}
	bound := port
	if port == 0 && len(reply) >= 4 {
		bound = binary.BigEndian.Uint32(reply)
	}
	c.mu.Lock()
	if c.remote == nil {
		c.remote = make(map[string]bool)
	}
	c.remote[hostPort(host, bound)] = true
	c.mu.Unlock()
	_ = req.Reply(true, reply)
	c.event(ctx, "forward.listening", map[string]string{"listen": hostPort(host, bound)})
}

// cancelTCPIPForward passes a cancel-tcpip-forward on for a forward this
// client set up, and refuses any other.
func (c *clientConn) cancelTCPIPForward(ctx context.Context, req *gossh.Request) {
	host, port, rest, ok := parseHostPort(req.Payload)
	listen := hostPort(host, port)
	c.mu.Lock()
	known := ok && len(rest) == 0 && c.remote[listen]
	delete(c.remote, listen)
	up := c.up
	c.mu.Unlock()
	if !known || up == nil {
		_ = req.Reply(false, nil)
		return
	}
	accepted, _, err := up.SendRequest("cancel-tcpip-forward", true, req.Payload)
	_ = req.Reply(err == nil && accepted, nil)
	c.event(ctx, "forward.cancelled", map[string]string{"listen": listen})
}

// forwarded takes a connection the target accepted on a remote forward and
// opens it to the client. Only forwards the client set up are served.
func (c *clientConn) forwarded(ctx context.Context, nc gossh.NewChannel) {
	host, port, rest, ok := parseHostPort(nc.ExtraData())
	origin, oport, _, ok2 := parseHostPort(rest)
	listen := hostPort(host, port)
	c.mu.Lock()
	known := ok && ok2 && c.remote[listen] && !c.closing
	if known {
		c.remoteWG.Add(1)
	}
	c.mu.Unlock()
	if !known {
		_ = nc.Reject(gossh.Prohibited, "no such forward")
		return
	}
	select {
	case c.slots <- struct{}{}:
	default:
		c.remoteWG.Done()
		_ = nc.Reject(gossh.ResourceShortage, "too many channels open")
		return
	}
	go func() {
		defer c.remoteWG.Done()
		defer func() { <-c.slots }()
		ch, creqs, err := c.sconn.OpenChannel("forwarded-tcpip", nc.ExtraData())
		if err != nil {
			_ = nc.Reject(gossh.ConnectionFailed, "the client refused the connection")
			return
		}
		uch, ureqs, err := nc.Accept()
		if err != nil {
			_ = ch.Close()
			return
		}
		c.event(ctx, "forward.opened", map[string]string{"listen": listen, "originator": hostPort(origin, oport)})
		c.relay(ch, creqs, uch, ureqs)
	}()
}

// admitForward puts a port forward the allow-lists let through to policy,
// as a port_forward request frame. It returns "" when the forward may go
// on, or why not. Policy decisions are audited by the host.
func (c *clientConn) admitForward(ctx context.Context, direction, addr string) string {
	c.countRequest()
	c.mu.Lock()
	session := c.sessionID
	c.mu.Unlock()
	resp, err := c.host.Admit(ctx, protocol.AdmitRequest{SessionID: session, Kind: abi.PortForward, Text: direction + " " + addr,
		Attrs: []abi.Attr{{Key: "direction", Value: direction}, {Key: "address", Value: addr}}})
	switch {
	case err != nil:
		c.log.Error("port forward refused: gateway cannot admit it", "error", err)
		return "gatewayd cannot record requests now; refused"
	case resp.Verdict.Action == abi.Allow:
		return ""
	case resp.Verdict.Action == abi.Deny:
		return "gatewayd policy denied this: " + resp.Verdict.Reason
	case resp.Verdict.Action == abi.Review:
		return "gatewayd policy requires approval for this: " + resp.Verdict.Reason
	default:
		_ = c.sconn.Close()
		return "gatewayd policy ended the session: " + resp.Verdict.Reason
	}
}
