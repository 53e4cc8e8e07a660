package ssh

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"

	gossh "golang.org/x/crypto/ssh"
)

// forwardAllowed reports whether a direct-tcpip destination passes the
// connection's allow_forward list. Link-local addresses (cloud metadata
// services among them) are refused whatever the list says.
func forwardAllowed(allow []string, host string, port uint32) bool {
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified()) {
		return false
	}
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

// parseDirectTCPIP reads a direct-tcpip channel's destination.
func parseDirectTCPIP(b []byte) (host string, port uint32, ok bool) {
	host, rest, ok := sshString(b)
	if !ok || len(rest) < 4 {
		return "", 0, false
	}
	return host, binary.BigEndian.Uint32(rest), true
}

// forward serves a direct-tcpip channel (ssh -L) the connection allows:
// the target opens the connection, bytes are relayed both ways.
func (c *clientConn) forward(ctx context.Context, nc gossh.NewChannel, allow []string) {
	host, port, ok := parseDirectTCPIP(nc.ExtraData())
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
