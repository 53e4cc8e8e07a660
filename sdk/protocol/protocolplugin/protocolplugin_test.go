package protocolplugin_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	gwplugin "github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Distinctive secrets, so that a leak is found by a substring search.
const (
	testCredential = "UPSTREAM-secret-3c9e1f"
	testToken      = "gwt-token-7b2d4a"
)

// syncBuffer collects the plugin's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	selfSumOnce sync.Once
	selfSum     []byte
)

// launch starts the test binary as a plugin, the way gatewayd does: gRPC
// only, AutoMTLS, the binary's checksum pinned.
func launch(t testing.TB, cfg protocolplugin.Config, env ...string) (*plugin.Client, *protocolplugin.Client, *syncBuffer) {
	t.Helper()
	pc, stderr := newPluginClient(t, true, env...)
	rpc, err := pc.Client()
	if err != nil {
		t.Fatalf("starting the plugin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := protocolplugin.Open(ctx, rpc, cfg)
	if err != nil {
		t.Fatalf("opening the plugin: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return pc, c, stderr
}

func newPluginClient(t testing.TB, mtls bool, env ...string) (*plugin.Client, *syncBuffer) {
	t.Helper()
	selfSumOnce.Do(func() {
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		selfSum = sum[:]
	})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{asPlugin + "=1"}, env...)...)
	stderr := &syncBuffer{}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  gwplugin.Handshake,
		VersionedPlugins: protocolplugin.VersionedPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  protocolplugin.DialOptions(),
		AutoMTLS:         mtls,
		SecureConfig:     &plugin.SecureConfig{Checksum: selfSum, Hash: sha256.New()},
		Logger:           hclog.NewNullLogger(),
		Stderr:           stderr,
		StartTimeout:     20 * time.Second,
	})
	t.Cleanup(func() {
		pc.Kill()
		// Under -race the plugin is race-built too; its reports go to
		// its stderr.
		if logs := stderr.String(); strings.Contains(logs, "DATA RACE") {
			t.Errorf("the plugin process reported a data race:\n%s", logs)
		}
	})
	return pc, stderr
}

// fakeHost records what the plugin asked and answers from fixed values.
type fakeHost struct {
	mu      sync.Mutex
	calls   []string
	records []protocol.RequestRecord
	// admit, when set, answers Admit.
	admit func(ctx context.Context, req protocol.AdmitRequest) (*protocol.AdmitResponse, error)
}

func (h *fakeHost) note(format string, args ...any) {
	h.mu.Lock()
	h.calls = append(h.calls, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *fakeHost) Authenticate(_ context.Context, req protocol.AuthenticateRequest) (*protocol.AuthenticateResponse, error) {
	h.note("authenticate %s %s %s", req.Protocol, req.User, req.Password.Reveal())
	if len(req.PublicKey) > 0 {
		return &protocol.AuthenticateResponse{Identity: protocol.Identity{Name: "key:" + string(req.PublicKey)}}, nil
	}
	if req.Password.Reveal() != testToken {
		return nil, protocol.ErrUnauthenticated
	}
	return &protocol.AuthenticateResponse{Identity: protocol.Identity{Name: req.User, Email: req.User + "@example.com", Groups: []string{"dev", "ops"}}}, nil
}

func (h *fakeHost) OpenSession(_ context.Context, req protocol.OpenSessionRequest) (*protocol.OpenSessionResponse, error) {
	h.note("open %s %s %v %s %s", req.Connection, req.Identity.Name, req.TLS, req.Attributes["application_name"], strings.Join(req.Identity.Groups, ","))
	switch req.Connection {
	case "forbidden":
		return nil, protocol.ErrNoAccess
	case "broken":
		return nil, fmt.Errorf("%w: the audit log is down", protocol.ErrUnavailable)
	}
	return &protocol.OpenSessionResponse{
		SessionID: "s1",
		Target: protocol.Target{Connection: req.Connection, Address: "127.0.0.1:5432", Database: "app", User: "app",
			Credential: secret.NewValue([]byte(testCredential)), TLS: protocol.TargetTLS{Mode: "require"}, DialTimeout: 3 * time.Second,
			HostKeys: []string{"ssh-ed25519 AAAA1", "ssh-ed25519 AAAA2"}, AllowForward: []string{"10.0.0.0/8:5432"},
			AllowRemoteForward: []string{"localhost:*", "127.0.0.1:8080"}},
		Policy:  true,
		Masking: abi.Subscribe(abi.Rows, abi.Message),
	}, nil
}

func (h *fakeHost) Admit(ctx context.Context, req protocol.AdmitRequest) (*protocol.AdmitResponse, error) {
	if h.admit != nil {
		return h.admit(ctx, req)
	}
	h.note("admit %s %s %s %v", req.SessionID, req.Kind, req.Text, req.Attrs)
	if strings.HasPrefix(req.Text, "DROP") {
		return &protocol.AdmitResponse{Verdict: abi.Verdict{Action: abi.Review, Reason: "needs approval", Reviewers: []string{"dba", "sec"}}, Module: "guard"}, nil
	}
	return &protocol.AdmitResponse{Verdict: abi.Verdict{Action: abi.Allow}}, nil
}

func (h *fakeHost) Mask(_ context.Context, req protocol.MaskRequest) (*protocol.MaskResponse, error) {
	b := req.Batch
	var changes []abi.Change
	for row := 0; row < b.Rows(); row++ {
		for col := range b.Columns {
			v, null := b.Value(row, col)
			switch {
			case null:
				changes = append(changes, abi.Change{Row: row, Col: col, Value: []byte("was-null")})
			case string(v) == "boom":
				return nil, errors.New("the result could not be masked")
			case strings.Contains(string(v), "@"):
				changes = append(changes, abi.Change{Row: row, Col: col, Null: true})
			}
		}
	}
	h.note("mask %s %d rows %s", req.SessionID, b.Rows(), b.Columns[0].Name)
	return &protocol.MaskResponse{Changes: changes}, nil
}

func (h *fakeHost) RecordRequests(_ context.Context, reqs []protocol.RequestRecord) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, reqs...)
	h.calls = append(h.calls, fmt.Sprintf("records %d", len(reqs)))
	for _, r := range reqs {
		if r.Text == "FAIL" {
			return fmt.Errorf("%w: the audit log cannot be written", protocol.ErrUnavailable)
		}
	}
	return nil
}

func (h *fakeHost) RecordEvent(_ context.Context, ev protocol.Event) error {
	h.note("event %s %s %v", ev.Kind, ev.SessionID, ev.Detail)
	if ev.Kind == "fail" {
		return errors.New("cannot record")
	}
	return nil
}

func (h *fakeHost) CloseSession(_ context.Context, req protocol.CloseSessionRequest) error {
	h.note("close %s %s %d %d %d", req.SessionID, req.Reason, req.BytesIn, req.BytesOut, req.RequestCount)
	return nil
}

// recordingHost is a fakeHost that records terminal sessions.
type recordingHost struct {
	*fakeHost
	got []protocol.RecordRequest
}

func (h *recordingHost) Record(_ context.Context, req protocol.RecordRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, req)
	return nil
}

func (h *fakeHost) saw(s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.calls {
		if c == s {
			return true
		}
	}
	return false
}

// session is one client connection served through a Client.
type session struct {
	t      testing.TB
	conn   net.Conn
	r      *bufio.Reader
	served chan error
}

// connect accepts a client connection and serves it through c with host.
func connect(t testing.TB, ctx context.Context, c *protocolplugin.Client, host protocol.Host) *session {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s := &session{t: t, conn: client, r: bufio.NewReader(client), served: make(chan error, 1)}
	go func() { s.served <- c.Serve(ctx, server, host) }()
	return s
}

// do sends one command and returns the answer.
func (s *session) do(cmd string) string {
	s.t.Helper()
	_ = s.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintln(s.conn, cmd); err != nil {
		s.t.Fatalf("%s: %v", cmd, err)
	}
	line, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimSpace(line)
}

// wait returns what Serve returned.
func (s *session) wait(within time.Duration) error {
	s.t.Helper()
	select {
	case err := <-s.served:
		return err
	case <-time.After(within):
		s.t.Fatalf("Serve did not return within %v", within)
		return nil
	}
}

func TestHostCallsCrossBothWays(t *testing.T) {
	_, c, stderr := launch(t, protocolplugin.Config{LogLevel: "debug"})
	host := &fakeHost{}
	s := connect(t, context.Background(), c, host)

	tests := []struct{ cmd, want string }{
		{"auth alice " + testToken, "identity alice alice@example.com dev,ops"},
		{"auth alice wrong", "err unauthenticated"},
		{"open app-db", "session s1 127.0.0.1:5432 app app " + testCredential + " require 3s true 1280 ssh-ed25519 AAAA1|ssh-ed25519 AAAA2 fwd=10.0.0.0/8:5432 rfwd=localhost:*|127.0.0.1:8080"},
		{"authkey ssh-ed25519 AAAAkey", "identity key:ssh-ed25519 AAAAkey"},
		{"recording", "no recorder"},
		{"open forbidden", "err noaccess " + protocol.ErrNoAccess.Error()},
		{"open broken", "err unavailable " + protocol.ErrUnavailable.Error() + ": the audit log is down"},
		{"admit SELECT 1", "verdict allow"},
		{"admit DROP TABLE t", "verdict review needs approval dba,sec guard"},
		{"mask a@example.com fine NULL x", "changes 0,0=/true 1,0=was-null/false"},
		{"mask boom x", "err other the result could not be masked"},
		{"record 3", "recorded 3"},
		{"event cancel", "ok"},
		{"event fail", "err other cannot record"},
		{"close client closed", "ok"},
		{"log hello", "ok"},
		{"addr", s.conn.LocalAddr().String()},
	}
	for _, tt := range tests {
		if got := s.do(tt.cmd); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.cmd, got, tt.want)
		}
	}
	for _, want := range []string{
		"authenticate script alice " + testToken,
		"open app-db alice true test dev",
		"admit s1 sql.query SELECT 1 [{k v}]",
		"mask s1 2 rows email",
		"event cancel s1 map[a:b]",
		"close s1 client closed 10 20 3",
	} {
		if !host.saw(want) {
			t.Errorf("the host never saw %q; it saw %q", want, host.calls)
		}
	}
	if len(host.records) != 3 || host.records[2].Text != "SELECT 2" || host.records[2].Rows != 2 ||
		!host.records[1].Started.Equal(time.Unix(1700000000, 1)) || host.records[0].Duration != time.Millisecond {
		t.Errorf("records = %+v", host.records)
	}
	if got := s.do("quit"); got != "bye" {
		t.Fatalf("quit: %q", got)
	}
	if err := s.wait(5 * time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := s.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the handler returned, the client read %v, want EOF", err)
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"@level":"info","@message":"script log","value":"hello"`) {
		t.Errorf("the plugin's log line is not on its stderr:\n%s", logs)
	}
	for _, secret := range []string{testCredential, testToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the plugin's stderr holds a secret:\n%s", logs)
		}
	}
}

// RecordRequests does not wait for gatewayd, but its failure refuses the
// session's next statement; and records reach gatewayd in order, before
// the session's end.
func TestAsyncRecordsKeepOrderAndFailClosed(t *testing.T) {
	_, c, _ := launch(t, protocolplugin.Config{})
	host := &fakeHost{}
	s := connect(t, context.Background(), c, host)
	for range 20 {
		if got := s.do("record 2"); got != "recorded 2" {
			t.Fatal(got)
		}
	}
	if got := s.do("close done"); got != "ok" {
		t.Fatal(got)
	}
	host.mu.Lock()
	calls := slices.Clone(host.calls)
	host.mu.Unlock()
	if len(calls) != 21 || calls[20] != "close s1 done 10 20 3" || calls[19] != "records 2" {
		t.Fatalf("calls in this order: %q", calls)
	}

	if got := s.do("recordfail"); got != "recorded" {
		t.Fatalf("recordfail: %q", got)
	}
	// The failure comes back with the next statement's Admit, at the
	// latest after the records' linger.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.do("admit SELECT 1")
		if got == "err unavailable "+protocol.ErrUnavailable.Error()+": the audit log cannot be written" {
			break
		}
		if got != "verdict allow" || time.Now().After(deadline) {
			t.Fatalf("admit after a failed record: %q", got)
		}
		time.Sleep(time.Millisecond)
	}
	if got := s.do("record 1"); !strings.HasPrefix(got, "err unavailable") {
		t.Fatalf("record after a failed record: %q", got)
	}
}

// A handler sees a protocol.Recorder exactly when gatewayd's Host for its
// connection is one.
func TestRecorderCrossesWhenTheHostRecords(t *testing.T) {
	_, c, _ := launch(t, protocolplugin.Config{})
	host := &recordingHost{fakeHost: &fakeHost{}}
	s := connect(t, context.Background(), c, host)
	if got := s.do("recording top"); got != "recorded" {
		t.Fatalf("recording: %q", got)
	}
	if len(host.got) != 1 || host.got[0].Start == nil || host.got[0].Start.Command != "top" || host.got[0].Start.Width != 80 ||
		!host.got[0].End || len(host.got[0].Events) != 1 || string(host.got[0].Events[0].Data) != "$ ls\r\n" ||
		host.got[0].Events[0].Kind != protocol.RecordOutput || !host.got[0].Events[0].Time.Equal(time.Unix(1700000000, 5)) {
		t.Fatalf("recorded %+v", host.got)
	}
}

func TestConfigureCarriesSettingsAndTLS(t *testing.T) {
	cert := selfSigned(t)
	_, c, _ := launch(t, protocolplugin.Config{
		TLS:                    &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		AllowCleartextPassword: true,
		MaxMessageBytes:        1234,
		HandshakeTimeout:       7 * time.Second,
		CallTimeout:            9 * time.Second,
		LogLevel:               "warn",
		SSHHostKeys:            [][]byte{[]byte("-----BEGIN OPENSSH PRIVATE KEY-----\n...")},
		SSHCiphers:             []string{"aes128-gcm@openssh.com", "aes128-ctr"},
	})
	s := connect(t, context.Background(), c, &fakeHost{})
	if got, want := s.do("config"), "cleartext=true max=1234 handshake=7s call=9s level=warn sshkeys=1 cleared=true ciphers=aes128-gcm@openssh.com,aes128-ctr"; got != want {
		t.Fatalf("config: %q, want %q", got, want)
	}
	if got := s.do("starttls"); got != "ok" {
		t.Fatalf("starttls: %q", got)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	tc := tls.Client(s.conn, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with the plugin: %v", err)
	}
	s.conn, s.r = tc, bufio.NewReader(tc)
	if got := s.do("pid"); got == "" || got == strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid over TLS: %q", got)
	}
}

func TestRefusedConfigurationFailsOpen(t *testing.T) {
	pc, _ := newPluginClient(t, true, "PROTOCOLPLUGIN_TEST_REFUSE_CONFIG=1")
	rpc, err := pc.Client()
	if err != nil {
		t.Fatal(err)
	}
	_, err = protocolplugin.Open(context.Background(), rpc, protocolplugin.Config{})
	if err == nil || !strings.Contains(err.Error(), "this handler refuses every configuration") {
		t.Fatalf("Open: %v", err)
	}
}

// Credentials cross the gRPC channel, so the plugin refuses one without
// mutual TLS.
func TestPluginRefusesChannelWithoutMTLS(t *testing.T) {
	pc, _ := newPluginClient(t, false)
	rpc, err := pc.Client()
	if err != nil {
		t.Fatal(err)
	}
	_, err = protocolplugin.Open(context.Background(), rpc, protocolplugin.Config{})
	if err == nil || !strings.Contains(err.Error(), "mutual TLS") {
		t.Fatalf("Open without AutoMTLS: %v", err)
	}
}

// The stream does not serialise sessions: every session's call is in the
// host at the same time, or none would be answered.
func TestSessionsCallConcurrently(t *testing.T) {
	const n = 24
	_, c, _ := launch(t, protocolplugin.Config{})
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	host := &fakeHost{admit: func(ctx context.Context, req protocol.AdmitRequest) (*protocol.AdmitResponse, error) {
		if req.Text == "barrier" {
			arrived.Done()
			select {
			case <-all:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &protocol.AdmitResponse{Verdict: abi.Verdict{Action: abi.Allow, Reason: req.Text}}, nil
	}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		s := connect(t, context.Background(), c, host)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.conn.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintln(s.conn, "admit barrier")
			line, err := s.r.ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "verdict allow barrier" {
				errs <- fmt.Errorf("session %d: %q %v", i, line, err)
				return
			}
			// Then many small calls each, all sessions at once.
			for j := range 200 {
				fmt.Fprintf(s.conn, "admit q%d\n", j)
			}
			for j := range 200 {
				line, err := s.r.ReadString('\n')
				if want := fmt.Sprintf("verdict allow q%d  ", j); err != nil || strings.TrimSpace(line) != strings.TrimSpace(want) {
					errs <- fmt.Errorf("session %d call %d: %q %v", i, j, line, err)
					return
				}
			}
			fmt.Fprintln(s.conn, "quit")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A host call that is never answered fails with ErrUnavailable once the
// call timeout passes, and the session goes on.
func TestUnansweredCallTimesOut(t *testing.T) {
	_, c, _ := launch(t, protocolplugin.Config{CallTimeout: 300 * time.Millisecond})
	release := make(chan struct{})
	defer close(release)
	host := &fakeHost{admit: func(context.Context, protocol.AdmitRequest) (*protocol.AdmitResponse, error) {
		<-release // ignores its context: never answers in time
		return &protocol.AdmitResponse{}, nil
	}}
	s := connect(t, context.Background(), c, host)
	start := time.Now()
	got := s.do("admit SELECT pg_sleep(1000)")
	took := time.Since(start)
	if !strings.HasPrefix(got, "err unavailable") || !strings.Contains(got, "did not answer Admit within") {
		t.Fatalf("admit: %q", got)
	}
	if took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("the call failed after %v, want about 300ms", took)
	}
	if got := s.do("event still-here"); got != "ok" {
		t.Fatalf("next call: %q", got)
	}
}

func TestHandlerErrorsAndPanicsReachServe(t *testing.T) {
	_, c, _ := launch(t, protocolplugin.Config{})
	s := connect(t, context.Background(), c, &fakeHost{})
	s.do("fail")
	if err := s.wait(5 * time.Second); err == nil || err.Error() != "the script handler failed on purpose" {
		t.Fatalf("Serve after fail: %v", err)
	}
	p := connect(t, context.Background(), c, &fakeHost{})
	p.do("panic")
	if err := p.wait(5 * time.Second); err == nil || !strings.Contains(err.Error(), "the script handler panicked on purpose") {
		t.Fatalf("Serve after panic: %v", err)
	}
	if _, err := p.r.ReadByte(); err == nil {
		t.Fatal("the connection of the panicked handler is still open")
	}
	// The plugin survived both.
	if got := connect(t, context.Background(), c, &fakeHost{}).do("event ok"); got != "ok" {
		t.Fatalf("after a panic: %q", got)
	}
}

// Cancelling Serve's context (gatewayd shutting down) reaches the handler,
// which ends the session its own way; Host calls made after that still get
// through.
func TestCancelReachesHandler(t *testing.T) {
	_, c, _ := launch(t, protocolplugin.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	host := &fakeHost{}
	s := connect(t, ctx, c, host)
	if got := s.do("event before"); got != "ok" {
		t.Fatal(got)
	}
	cancel()
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := s.r.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "cancelled" {
		t.Fatalf("after cancel the client read %q, %v", line, err)
	}
	if err := s.wait(5 * time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// kill -9 of the plugin mid-session: every Serve returns promptly with
// ErrPluginShutdown, every client sees its connection closed, and a new
// plugin process serves the next session.
func TestKilledPluginEndsItsSessions(t *testing.T) {
	pc, c, _ := launch(t, protocolplugin.Config{})
	host := &fakeHost{}
	var sessions []*session
	for range 3 {
		s := connect(t, context.Background(), c, host)
		if got := s.do("event up"); got != "ok" {
			t.Fatal(got)
		}
		sessions = append(sessions, s)
	}
	// One of them opened a session it will never close itself.
	if got := sessions[1].do("open app-db"); !strings.HasPrefix(got, "session s1 ") {
		t.Fatal(got)
	}
	pid, err := strconv.Atoi(sessions[0].do("pid"))
	if err != nil || pid != pc.ReattachConfig().Pid {
		t.Fatalf("pid %d (%v), go-plugin says %d", pid, err, pc.ReattachConfig().Pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i, s := range sessions {
		if err := s.wait(5 * time.Second); !errors.Is(err, protocolplugin.ErrPluginShutdown) {
			t.Fatalf("session %d: Serve returned %v", i, err)
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := s.r.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("session %d: the client read %q, %v; want its connection closed", i, n, err)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the sessions ended %v after the kill", took)
	}
	// gatewayd closed the session the dead plugin had opened.
	host.mu.Lock()
	var closes []string
	for _, call := range host.calls {
		if strings.HasPrefix(call, "close ") {
			closes = append(closes, call)
		}
	}
	host.mu.Unlock()
	if len(closes) != 1 || !strings.HasPrefix(closes[0], "close s1 "+protocolplugin.ErrPluginShutdown.Error()) {
		t.Fatalf("closed sessions: %q", closes)
	}
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("Client.Done not closed")
	}
	// A connection handed to the dead plugin is closed at once.
	late := connect(t, context.Background(), c, host)
	if err := late.wait(time.Second); !errors.Is(err, protocolplugin.ErrPluginShutdown) {
		t.Fatalf("Serve on a dead plugin: %v", err)
	}
	if _, err := late.r.ReadByte(); err == nil {
		t.Fatal("a connection handed to a dead plugin stays open")
	}

	// Restarted, the plugin serves again.
	_, c2, _ := launch(t, protocolplugin.Config{})
	s := connect(t, context.Background(), c2, host)
	if got := s.do("auth alice " + testToken); got != "identity alice alice@example.com dev,ops" {
		t.Fatalf("after restart: %q", got)
	}
}

// gatewayd closes its copy of each connection as soon as it is handed
// over: only the plugin holds it.
func TestHostKeepsNoCopyOfHandedConnections(t *testing.T) {
	_, c, _ := launch(t, protocolplugin.Config{})
	before := openSockets(t)
	s := connect(t, context.Background(), c, &fakeHost{})
	if got := s.do("event x"); got != "ok" {
		t.Fatal(got)
	}
	// The test process holds the client end only.
	if after := openSockets(t); after != before+1 {
		t.Fatalf("%d sockets open in gatewayd's process during the session, want %d", after, before+1)
	}
}

func openSockets(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

func TestServeRefusesConnectionWithoutDescriptor(t *testing.T) {
	_, c, _ := launch(t, protocolplugin.Config{})
	a, b := net.Pipe()
	defer b.Close()
	err := c.Serve(context.Background(), a, &fakeHost{})
	if err == nil || !strings.Contains(err.Error(), "no file descriptor") {
		t.Fatalf("Serve with a net.Pipe: %v", err)
	}
	// The plugin is unaffected.
	if got := connect(t, context.Background(), c, &fakeHost{}).do("event ok"); got != "ok" {
		t.Fatal(got)
	}
}

func TestOpenRefusesTLSItCannotSend(t *testing.T) {
	pc, _ := newPluginClient(t, true)
	rpc, err := pc.Client()
	if err != nil {
		t.Fatal(err)
	}
	_, err = protocolplugin.Open(context.Background(), rpc, protocolplugin.Config{
		TLS: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }},
	})
	if err == nil || !strings.Contains(err.Error(), "cannot be sent") {
		t.Fatalf("Open: %v", err)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
