package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// errHostKeyMismatch reports a target whose host key is not the pinned one.
var errHostKeyMismatch = errors.New("ssh: the target's host key does not match the pinned host_key")

// dialUpstream connects and authenticates to the target as its configured
// user with the injected credential: a private key (PEM, OpenSSH format)
// when the secret parses as one, else a password.
func dialUpstream(ctx context.Context, t protocol.Target) (*gossh.Client, error) {
	pinned, err := parseHostKeys(t.HostKeys)
	if err != nil {
		return nil, err
	}
	var auth []gossh.AuthMethod
	cred := []byte(t.Credential.Reveal())
	if signer, err := gossh.ParsePrivateKey(cred); err == nil {
		auth = append(auth, gossh.PublicKeys(signer))
	} else if bytes.Contains(cred, []byte("PRIVATE KEY")) {
		return nil, errors.New("ssh: the connection's secret looks like a private key but does not parse (encrypted keys are not supported)")
	} else {
		pw := strings.TrimRight(string(cred), "\r\n")
		auth = append(auth, gossh.Password(pw), gossh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	clear(cred)
	timeout := t.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cfg := &gossh.ClientConfig{
		User: t.User,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
			for _, p := range pinned {
				if bytes.Equal(p.Marshal(), key.Marshal()) {
					return nil
				}
			}
			return errHostKeyMismatch
		},
		HostKeyAlgorithms: algorithms(pinned),
		// AES-GCM first: with AES instructions it costs the gateway a
		// fraction of ChaCha20-Poly1305's CPU per byte relayed.
		Config: gossh.Config{Ciphers: []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM,
			gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR, gossh.CipherAES256CTR}},
		Timeout:       timeout,
		ClientVersion: "SSH-2.0-gatewayd",
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", t.Address)
	if err != nil {
		return nil, fmt.Errorf("ssh: dialing: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	cc, chans, reqs, err := gossh.NewClientConn(conn, t.Address, cfg)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ssh: connecting to the target: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return gossh.NewClient(cc, chans, reqs), nil
}

// parseHostKeys reads pinned keys in authorized_keys format ("ssh-ed25519
// AAAA... comment") or known_hosts format ("host ssh-ed25519 AAAA...").
func parseHostKeys(lines []string) ([]gossh.PublicKey, error) {
	var keys []gossh.PublicKey
	for _, l := range lines {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			if _, _, k2, _, _, err2 := gossh.ParseKnownHosts([]byte(l)); err2 == nil {
				k, err = k2, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("ssh: pinned host key does not parse: %w", err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("ssh: no pinned host key for the target: refusing to connect")
	}
	return keys, nil
}

// algorithms asks the target for the pinned keys' algorithms only, so that
// it presents the key that is pinned rather than another of its keys.
func algorithms(keys []gossh.PublicKey) []string {
	var algs []string
	for _, k := range keys {
		switch k.Type() {
		case gossh.KeyAlgoRSA:
			algs = append(algs, gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256)
		default:
			algs = append(algs, k.Type())
		}
	}
	return algs
}

// upstreamError is what the client is told when the target cannot be
// reached: the connection's name, never its address or credential.
func upstreamError(name string, err error) error {
	if errors.Is(err, errHostKeyMismatch) {
		return fmt.Errorf("gatewayd refused to connect to %q: its host key does not match the pinned key (possible man-in-the-middle; ask the gateway's operator)", name)
	}
	return fmt.Errorf("gatewayd could not connect to %q", name)
}
