package protocolplugin_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// asPlugin makes the test binary the plugin: the tests launch os.Args[0]
// with it set, through go-plugin.
const asPlugin = "PROTOCOLPLUGIN_TEST_RUN_AS_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(asPlugin) == "1" {
		protocolplugin.Serve(func(cfg protocolplugin.Config) (protocol.Handler, error) {
			if os.Getenv("PROTOCOLPLUGIN_TEST_REFUSE_CONFIG") == "1" {
				return nil, errors.New("this handler refuses every configuration")
			}
			return &scriptHandler{cfg: cfg}, nil
		})
		return
	}
	os.Exit(m.Run())
}

// scriptHandler is a line protocol for driving Host calls from a test: each
// line the client sends is a command, each answer one line.
type scriptHandler struct{ cfg protocolplugin.Config }

func (h *scriptHandler) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	defer conn.Close()
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	say := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		_ = w.Flush()
	}
	// A cancelled context interrupts the read, as in a real handler.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				say("cancelled")
			}
			return nil
		}
		line = strings.TrimSpace(line)
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case "pid":
			say("%d", os.Getpid())
		case "addr":
			say("%s", conn.RemoteAddr())
		case "config":
			// The SSH host keys' bytes are cleared once the handler is
			// built.
			cleared := true
			for _, k := range h.cfg.SSHHostKeys {
				cleared = cleared && len(k) > 0 && bytes.Count(k, []byte{0}) == len(k)
			}
			say("cleartext=%v max=%d handshake=%v call=%v level=%s sshkeys=%d cleared=%v ciphers=%s", h.cfg.AllowCleartextPassword, h.cfg.MaxMessageBytes,
				h.cfg.HandshakeTimeout, h.cfg.CallTimeout, h.cfg.LogLevel, len(h.cfg.SSHHostKeys), cleared, strings.Join(h.cfg.SSHCiphers, ","))
		case "starttls":
			say("ok")
			tc := tls.Server(conn, h.cfg.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return err
			}
			r = bufio.NewReader(tc)
			w = bufio.NewWriter(tc)
		case "auth":
			user, pw, _ := strings.Cut(arg, " ")
			resp, err := host.Authenticate(ctx, protocol.AuthenticateRequest{Protocol: "script", ClientAddr: conn.RemoteAddr().String(), User: user, Password: secret.NewValue([]byte(pw))})
			if err != nil {
				say("err %s", errKind(err))
				continue
			}
			say("identity %s %s %s", resp.Identity.Name, resp.Identity.Email, strings.Join(resp.Identity.Groups, ","))
		case "authkey":
			resp, err := host.Authenticate(ctx, protocol.AuthenticateRequest{Protocol: "script", PublicKey: []byte(arg)})
			if err != nil {
				say("err %s", errKind(err))
				continue
			}
			say("identity %s", resp.Identity.Name)
		case "recording":
			rec, ok := host.(protocol.Recorder)
			if !ok {
				say("no recorder")
				continue
			}
			err := rec.Record(ctx, protocol.RecordRequest{SessionID: "s1", Start: &protocol.RecordingStart{Width: 80, Height: 24, Term: "xterm", Command: arg},
				Events: []protocol.RecordEvent{{Time: time.Unix(1700000000, 5), Kind: protocol.RecordOutput, Data: []byte("$ ls\r\n")}}, End: true})
			if err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			say("recorded")
		case "open":
			resp, err := host.OpenSession(ctx, protocol.OpenSessionRequest{Protocol: "script", Connection: arg, TLS: true,
				Identity: protocol.Identity{Name: "alice", Groups: []string{"dev"}}, Attributes: map[string]string{"application_name": "test"}})
			if err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			t := resp.Target
			say("session %s %s %s %s %s %s %v %v %d %s fwd=%s rfwd=%s", resp.SessionID, t.Address, t.Database, t.User, t.Credential.Reveal(), t.TLS.Mode,
				t.DialTimeout, resp.Policy, resp.Masking, strings.Join(t.HostKeys, "|"), strings.Join(t.AllowForward, "|"), strings.Join(t.AllowRemoteForward, "|"))
		case "admit":
			resp, err := host.Admit(ctx, protocol.AdmitRequest{SessionID: "s1", Kind: abi.SQLQuery, Text: arg, Attrs: []abi.Attr{{Key: "k", Value: "v"}}})
			if err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			say("verdict %s %s %s %s", resp.Verdict.Action, resp.Verdict.Reason, strings.Join(resp.Verdict.Reviewers, ","), resp.Module)
		case "mask":
			var b abi.Batch
			b.Reset(abi.Rows, []abi.Column{{Name: "email", Type: 25}, {Name: "note", Type: 25}})
			for v := range strings.FieldsSeq(arg) {
				b.Append([]byte(v), v == "NULL")
			}
			resp, err := host.Mask(ctx, protocol.MaskRequest{SessionID: "s1", Batch: &b})
			if err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			var out []string
			for _, ch := range resp.Changes {
				out = append(out, fmt.Sprintf("%d,%d=%s/%v", ch.Row, ch.Col, ch.Value, ch.Null))
			}
			say("changes %s", strings.Join(out, " "))
		case "record":
			n, _ := strconv.Atoi(arg)
			recs := make([]protocol.RequestRecord, n)
			for i := range recs {
				recs[i] = protocol.RequestRecord{SessionID: "s1", Kind: "query", Text: fmt.Sprintf("SELECT %d", i),
					Started: time.Unix(1700000000, int64(i)), Duration: time.Millisecond, Rows: int64(i), Outcome: "ok", Tag: "SELECT 1"}
			}
			if err := host.RecordRequests(ctx, recs); err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			say("recorded %d", n)
		case "recordfail":
			err := host.RecordRequests(ctx, []protocol.RequestRecord{{SessionID: "s1", Kind: "query", Text: "FAIL"}})
			if err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			say("recorded")
		case "event":
			if err := host.RecordEvent(ctx, protocol.Event{Kind: arg, SessionID: "s1", Detail: map[string]string{"a": "b"}}); err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			say("ok")
		case "close":
			if err := host.CloseSession(ctx, protocol.CloseSessionRequest{SessionID: "s1", Reason: arg, BytesIn: 10, BytesOut: 20, RequestCount: 3}); err != nil {
				say("err %s %s", errKind(err), err)
				continue
			}
			say("ok")
		case "bench":
			// bench N: N Admit calls in a row, then N RecordRequests of one
			// record each, as a statement-per-call workload does.
			n, _ := strconv.Atoi(arg)
			rec := []protocol.RequestRecord{{SessionID: "s1", Kind: "query", Text: "SELECT 1", Outcome: "ok", Tag: "SELECT 1"}}
			var err error
			for i := 0; i < n && err == nil; i++ {
				if _, err = host.Admit(ctx, protocol.AdmitRequest{SessionID: "s1", Kind: abi.SQLQuery, Text: "SELECT 1"}); err == nil {
					err = host.RecordRequests(ctx, rec)
				}
			}
			if err != nil {
				say("err %s", err)
				continue
			}
			say("done")
		case "log":
			h.cfg.Logger.Info("script log", "value", arg)
			say("ok")
		case "fail":
			say("failing")
			return errors.New("the script handler failed on purpose")
		case "panic":
			say("panicking")
			panic("the script handler panicked on purpose")
		case "quit":
			say("bye")
			return nil
		default:
			say("unknown %q", cmd)
		}
	}
}

func errKind(err error) string {
	switch {
	case errors.Is(err, protocol.ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, protocol.ErrNoAccess):
		return "noaccess"
	case errors.Is(err, protocol.ErrUnavailable):
		return "unavailable"
	}
	return "other"
}
