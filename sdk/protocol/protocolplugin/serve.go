package protocolplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	gwplugin "github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/internal/handover"
	pb "github.com/gatewayd-access/gatewayd/sdk/protocol/internal/protocolv1"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// exitGrace is how long a plugin whose gatewayd is gone lets its sessions
// end before it exits.
const exitGrace = 5 * time.Second

// Serve runs a protocol-handler plugin: a plugin binary's main calls it and
// nothing else. gatewayd starts the binary through go-plugin (gRPC,
// AutoMTLS) and configures it once; newHandler then builds the handler from
// that Config, and each client connection gatewayd accepts is handed to the
// handler's Serve, in this process, with a Host whose calls go back to
// gatewayd. Serve does not return: the process ends when gatewayd stops it,
// or when gatewayd is gone.
func Serve(newHandler func(Config) (protocol.Handler, error)) {
	// go-plugin points os.Stderr at a pipe of its own once it serves; logs
	// go to the real stderr, which gatewayd reads line by line.
	stderr := os.Stderr
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: gwplugin.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			Version: {gwplugin.KindProtocol: &grpcPlugin{newHandler: newHandler, logOut: stderr}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, serverOptions()...)...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "protocolplugin", Output: stderr, Level: hclog.Warn, JSONFormat: true,
		}),
	})
}

// windowSize is the HTTP/2 flow-control window of the plugin channel, both
// ways, fixed: gRPC's dynamic windows estimate bandwidth with a PING (and
// its ack) after each burst of data, which on a channel of many small
// messages means more writes and wakeups in both processes.
const windowSize = 8 << 20

func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StaticStreamWindowSize(windowSize), grpc.StaticConnWindowSize(windowSize)}
}

// DialOptions are the gRPC options gatewayd adds to the go-plugin client
// of a protocol-handler plugin (plugin.ClientConfig.GRPCDialOptions): the
// plugin channel's fixed flow-control windows. Without them the channel
// works, with more writes per call.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStaticStreamWindowSize(windowSize), grpc.WithStaticConnWindowSize(windowSize)}
}

// Version is the version of the gRPC contract this package speaks (the v1
// of gatewayd.protocol.v1), negotiated through go-plugin's
// VersionedPlugins.
const Version = 1

// VersionedPlugins is the plugin set gatewayd gives go-plugin
// (plugin.ClientConfig.VersionedPlugins) to launch a protocol-handler
// plugin; Open dispenses from the resulting client.
func VersionedPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{Version: {gwplugin.KindProtocol: &grpcPlugin{}}}
}

// grpcPlugin is the go-plugin glue of both ends.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	newHandler func(Config) (protocol.Handler, error)
	logOut     io.Writer
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterProtocolHandlerServer(s, newServer(p.newHandler, p.logOut, func() {
		os.Exit(0)
	}))
	return nil
}

func (p *grpcPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return newClient(ctx, pb.NewProtocolHandlerClient(cc)), nil
}

// server is the plugin's end: it receives connections, runs the handler on
// each, and carries the handler's Host calls over the Calls stream.
type server struct {
	pb.UnimplementedProtocolHandlerServer
	newHandler func(Config) (protocol.Handler, error)
	logOut     io.Writer
	exit       func()

	mu          sync.Mutex
	configured  bool
	streaming   bool
	handler     protocol.Handler
	log         *slog.Logger
	callTimeout time.Duration
	recv        *handover.Receiver
	// sessions holds each running connection's cancel function; an entry
	// with cancelled set and no cancel is a cancellation that came before
	// its connection.
	sessions map[uint64]*pluginSession
	running  sync.WaitGroup

	// batch sends on the Calls stream; it holds what is queued before the
	// stream opens.
	batch    *batcher[*pb.PluginFrame]
	stream   grpc.BidiStreamingServer[pb.HostBatch, pb.PluginBatch]
	gone     chan struct{} // closed once gatewayd is gone
	goneOnce sync.Once

	nextID  atomic.Uint64
	pmu     sync.Mutex
	pending map[uint64]chan *pb.Reply
}

type pluginSession struct {
	cancel    context.CancelFunc
	cancelled bool

	mu sync.Mutex
	// failed is the failure of an async call, returned from the next
	// Admit or RecordRequests.
	failed error
	// holds are when the session's held requests time out, by review.
	holds map[string]time.Time
}

func (ps *pluginSession) holdUntil(review string, until time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.holds == nil {
		ps.holds = make(map[string]time.Time)
	}
	ps.holds[review] = until
}

func (ps *pluginSession) takeHoldUntil(review string) time.Time {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	until := ps.holds[review]
	delete(ps.holds, review)
	return until
}

func (ps *pluginSession) setFailed(err error) {
	ps.mu.Lock()
	if ps.failed == nil {
		ps.failed = err
	}
	ps.mu.Unlock()
}

func (ps *pluginSession) failure() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.failed
}

func newServer(newHandler func(Config) (protocol.Handler, error), logOut io.Writer, exit func()) *server {
	s := &server{
		newHandler: newHandler,
		logOut:     logOut,
		exit:       exit,
		log:        slog.New(gwplugin.NewLogHandler(logOut, slog.LevelInfo)),
		sessions:   map[uint64]*pluginSession{},
		gone:       make(chan struct{}),
		pending:    map[uint64]chan *pb.Reply{},
	}
	// Held until Calls opens the stream; frames queued before wait.
	s.batch = newBatcher(func(b []*pb.PluginFrame) error {
		err := s.stream.Send(&pb.PluginBatch{Frames: b})
		if err != nil {
			go s.hostGone(fmt.Errorf("sending on the call stream: %w", err))
		}
		return err
	}, true)
	return s
}

// requireMTLS refuses a gRPC channel that is not mutually authenticated
// TLS: credentials cross it.
func requireMTLS(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			return nil
		}
	}
	return status.Error(codes.PermissionDenied,
		"protocolplugin: refusing a channel without mutual TLS: start the plugin with go-plugin's AutoMTLS")
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	defer func() {
		for _, c := range req.Certificates {
			clear(c.PrivateKey)
		}
		for _, k := range req.SshHostKeys {
			clear(k)
		}
	}()
	if err := requireMTLS(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.configured {
		return nil, status.Error(codes.FailedPrecondition, "protocolplugin: already configured")
	}
	cfg, err := decodeConfig(req, s.logOut)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	h, err := s.newHandler(cfg)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "protocolplugin: building the handler: %v", err)
	}
	recv, err := handover.Dial(ctx, req.HandoverSocket, req.HandoverToken)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	s.configured, s.handler, s.log, s.callTimeout, s.recv = true, h, cfg.Logger, cfg.CallTimeout, recv
	go s.receive()
	return &pb.ConfigureResponse{}, nil
}

func (s *server) Calls(stream grpc.BidiStreamingServer[pb.HostBatch, pb.PluginBatch]) error {
	if err := requireMTLS(stream.Context()); err != nil {
		return err
	}
	s.mu.Lock()
	if s.streaming || !s.configured {
		s.mu.Unlock()
		return status.Error(codes.FailedPrecondition, "protocolplugin: Calls needs Configure first, and is opened once")
	}
	s.streaming = true
	s.stream = stream
	s.mu.Unlock()
	s.batch.release()
	for {
		msg, err := stream.Recv()
		if err != nil {
			s.hostGone(fmt.Errorf("the call stream ended: %w", err))
			return nil
		}
		for _, f := range msg.Frames {
			switch fr := f.Frame.(type) {
			case *pb.HostFrame_Reply:
				s.deliver(fr.Reply)
			case *pb.HostFrame_CancelSession:
				s.cancelSession(fr.CancelSession)
			case *pb.HostFrame_AsyncError:
				s.mu.Lock()
				ps := s.sessions[fr.AsyncError.Session]
				s.mu.Unlock()
				if ps != nil && fr.AsyncError.Error != nil {
					ps.setFailed(errorFromPB(fr.AsyncError.Error))
				}
			}
		}
	}
}

// receive takes connections from gatewayd until the socket ends.
func (s *server) receive() {
	for {
		handle, flags, conn, err := s.recv.Receive()
		switch {
		case errors.Is(err, handover.ErrMalformed):
			s.log.Error("refused a malformed connection handover", "error", err)
			if handle != 0 {
				s.enqueue(&pb.PluginFrame{Frame: &pb.PluginFrame_Done{Done: &pb.SessionDone{Session: handle, Error: err.Error()}}})
			}
			continue
		case err != nil:
			s.hostGone(err)
			return
		}
		s.start(handle, flags, conn)
	}
}

// start runs the handler on one connection.
func (s *server) start(handle uint64, flags byte, c net.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	ps := s.sessions[handle]
	if ps == nil {
		ps = &pluginSession{}
		s.sessions[handle] = ps
	}
	ps.cancel = cancel
	if ps.cancelled {
		cancel()
	}
	h := s.handler
	s.running.Add(1)
	s.mu.Unlock()
	select {
	case <-s.gone:
		cancel()
	default:
	}
	go func() {
		defer s.running.Done()
		var host protocol.Host = &sessionHost{s: s, handle: handle, st: ps}
		if flags&handover.HostRecords != 0 {
			host = &recordingHost{sessionHost{s: s, handle: handle, st: ps}}
		}
		err := serveSafely(ctx, h, c, host)
		_ = c.Close()
		cancel()
		s.mu.Lock()
		delete(s.sessions, handle)
		s.mu.Unlock()
		done := &pb.SessionDone{Session: handle}
		if err != nil {
			done.Error = err.Error()
		}
		s.enqueue(&pb.PluginFrame{Frame: &pb.PluginFrame_Done{Done: done}})
	}()
}

// serveSafely runs the handler and turns a panic into an error, so that
// one connection cannot take the others down.
func serveSafely(ctx context.Context, h protocol.Handler, conn net.Conn, host protocol.Host) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("protocolplugin: the handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return h.Serve(ctx, conn, host)
}

func (s *server) cancelSession(handle uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.sessions[handle]
	if ps == nil {
		// The cancellation overtook its connection.
		s.sessions[handle] = &pluginSession{cancelled: true}
		return
	}
	ps.cancelled = true
	if ps.cancel != nil {
		ps.cancel()
	}
}

// hostGone ends everything: gatewayd closed the stream or the socket, or
// exited. The sessions are cancelled, given a moment to end, and the
// process exits.
func (s *server) hostGone(cause error) {
	s.goneOnce.Do(func() {
		s.log.Warn("gatewayd is gone: ending every session", "reason", cause.Error())
		close(s.gone)
		s.batch.close(errHostGone)
		s.mu.Lock()
		for _, ps := range s.sessions {
			if ps.cancel != nil {
				ps.cancel()
			}
		}
		recv := s.recv
		s.mu.Unlock()
		if recv != nil {
			_ = recv.Close()
		}
		go func() {
			done := make(chan struct{})
			go func() { s.running.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(exitGrace):
			}
			s.exit()
		}()
	})
}

// enqueue queues f for gatewayd, to go at once with whatever else waits.
// It fails once gatewayd is gone.
func (s *server) enqueue(f *pb.PluginFrame) bool {
	return s.batch.push(f, false) == nil
}

func (s *server) deliver(r *pb.Reply) {
	s.pmu.Lock()
	ch := s.pending[r.Id]
	delete(s.pending, r.Id)
	s.pmu.Unlock()
	if ch != nil {
		ch <- r // buffered: never blocks
	}
}

// errHostGone is what Host calls return once gatewayd is unreachable.
var errHostGone = fmt.Errorf("%w: gatewayd is gone", protocol.ErrUnavailable)

// call sends one Host call and waits for its reply, at most the call
// timeout or until ctx ends. A reply that carries an error is returned as
// that error.
func (s *server) call(ctx context.Context, handle uint64, name string, c *pb.Call) (*pb.Reply, error) {
	return s.callFor(ctx, s.callTimeout, handle, name, c)
}

// callFor is call with its own timeout.
func (s *server) callFor(ctx context.Context, timeout time.Duration, handle uint64, name string, c *pb.Call) (*pb.Reply, error) {
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: no time left to call gatewayd (%s)", protocol.ErrUnavailable, name)
	}
	id := s.nextID.Add(1)
	c.Id, c.Session, c.TimeoutNanos = id, handle, int64(timeout)
	ch := make(chan *pb.Reply, 1)
	s.pmu.Lock()
	s.pending[id] = ch
	s.pmu.Unlock()
	if !s.enqueue(&pb.PluginFrame{Frame: &pb.PluginFrame_Call{Call: c}}) {
		s.forget(id)
		return nil, errHostGone
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, errorFromPB(r.Error)
		}
		return r, nil
	case <-ctx.Done():
		s.abandon(id)
		return nil, fmt.Errorf("%w: %s: %w", protocol.ErrUnavailable, name, context.Cause(ctx))
	case <-timer.C:
		s.abandon(id)
		return nil, fmt.Errorf("%w: gatewayd did not answer %s within %v", protocol.ErrUnavailable, name, timeout)
	case <-s.gone:
		return nil, errHostGone
	}
}

func (s *server) forget(id uint64) {
	s.pmu.Lock()
	delete(s.pending, id)
	s.pmu.Unlock()
}

// abandon stops waiting for a call and tells gatewayd to stop working on it.
func (s *server) abandon(id uint64) {
	s.forget(id)
	s.enqueue(&pb.PluginFrame{Frame: &pb.PluginFrame_CancelCall{CancelCall: id}})
}

// errBadReply reports a reply that does not answer the call.
var errBadReply = fmt.Errorf("%w: gatewayd sent a reply of the wrong kind", protocol.ErrUnavailable)

// sessionHost is the Host one connection's handler sees.
type sessionHost struct {
	s      *server
	handle uint64
	st     *pluginSession
}

func (h *sessionHost) Authenticate(ctx context.Context, req protocol.AuthenticateRequest) (*protocol.AuthenticateResponse, error) {
	r, err := h.s.call(ctx, h.handle, "Authenticate", &pb.Call{Request: &pb.Call_Authenticate{Authenticate: authenticateToPB(req)}})
	if err != nil {
		return nil, err
	}
	a := r.GetAuthenticate()
	if a == nil {
		return nil, errBadReply
	}
	return &protocol.AuthenticateResponse{Identity: identityFromPB(a.Identity)}, nil
}

func (h *sessionHost) OpenSession(ctx context.Context, req protocol.OpenSessionRequest) (*protocol.OpenSessionResponse, error) {
	r, err := h.s.call(ctx, h.handle, "OpenSession", &pb.Call{Request: &pb.Call_OpenSession{OpenSession: openSessionToPB(req)}})
	if err != nil {
		return nil, err
	}
	o := r.GetOpenSession()
	if o == nil {
		return nil, errBadReply
	}
	return openSessionRespFromPB(o), nil
}

func (h *sessionHost) Admit(ctx context.Context, req protocol.AdmitRequest) (*protocol.AdmitResponse, error) {
	if err := h.st.failure(); err != nil {
		return nil, err
	}
	r, err := h.s.call(ctx, h.handle, "Admit", &pb.Call{Request: &pb.Call_Admit{Admit: admitToPB(req)}})
	if err != nil {
		return nil, err
	}
	a := r.GetAdmit()
	if a == nil {
		return nil, errBadReply
	}
	return admitRespFromPB(a), nil
}

func (h *sessionHost) Mask(ctx context.Context, req protocol.MaskRequest) (*protocol.MaskResponse, error) {
	r, err := h.s.call(ctx, h.handle, "Mask", &pb.Call{Request: &pb.Call_Mask{Mask: &pb.MaskRequest{
		SessionId: req.SessionID, Batch: abi.AppendBatch(nil, req.Batch),
	}}})
	if err != nil {
		return nil, err
	}
	m := r.GetMask()
	if m == nil {
		return nil, errBadReply
	}
	var ch abi.Changes
	if err := abi.DecodeChanges(m.Changes, &ch, req.Batch.Rows(), len(req.Batch.Columns)); err != nil {
		return nil, fmt.Errorf("%w: gatewayd sent malformed masking changes: %v", protocol.ErrUnavailable, err)
	}
	return &protocol.MaskResponse{Changes: ch.List}, nil
}

// RecordRequests does not wait for gatewayd: like the audit log's own
// Append, it queues the records, and a failure (the audit log cannot be
// written) is returned from the session's next Admit or RecordRequests, so
// that the next statement is refused. On the wire the records travel with
// the session's next call, or within linger.
func (h *sessionHost) RecordRequests(_ context.Context, reqs []protocol.RequestRecord) error {
	if err := h.st.failure(); err != nil {
		return err
	}
	c := &pb.Call{Id: h.s.nextID.Add(1), Session: h.handle, Async: true, TimeoutNanos: int64(h.s.callTimeout),
		Request: &pb.Call_RecordRequests{RecordRequests: recordsToPB(reqs)}}
	if h.s.batch.push(&pb.PluginFrame{Frame: &pb.PluginFrame_Call{Call: c}}, true) != nil {
		return errHostGone
	}
	return nil
}

func (h *sessionHost) RecordEvent(ctx context.Context, ev protocol.Event) error {
	_, err := h.s.call(ctx, h.handle, "RecordEvent", &pb.Call{Request: &pb.Call_RecordEvent{RecordEvent: eventToPB(ev)}})
	return err
}

func (h *sessionHost) CloseSession(ctx context.Context, req protocol.CloseSessionRequest) error {
	_, err := h.s.call(ctx, h.handle, "CloseSession", &pb.Call{Request: &pb.Call_CloseSession{CloseSession: closeToPB(req)}})
	return err
}

// Hold asks gatewayd to hold a request for review. When gatewayd cannot
// hold requests, it answers protocol.ErrHoldUnavailable, and the handler
// refuses the request, as it would in process.
func (h *sessionHost) Hold(ctx context.Context, req protocol.HoldRequest) (*protocol.HoldResponse, error) {
	r, err := h.s.call(ctx, h.handle, "Hold", &pb.Call{Request: &pb.Call_Hold{Hold: holdToPB(req)}})
	if err != nil {
		return nil, err
	}
	hr := r.GetHold()
	if hr == nil {
		return nil, errBadReply
	}
	resp := holdRespFromPB(hr)
	h.st.holdUntil(resp.ReviewID, resp.Until)
	return resp, nil
}

// AwaitHold waits for a held request's decision: the call lasts until the
// hold times out (and the call timeout after it), or until ctx ends, which
// withdraws the review at gatewayd.
func (h *sessionHost) AwaitHold(ctx context.Context, req protocol.AwaitHoldRequest) (*protocol.AwaitHoldResponse, error) {
	timeout := h.s.callTimeout
	if until := h.st.takeHoldUntil(req.ReviewID); !until.IsZero() {
		timeout += time.Until(until)
	}
	r, err := h.s.callFor(ctx, timeout, h.handle, "AwaitHold", &pb.Call{Request: &pb.Call_AwaitHold{AwaitHold: &pb.AwaitHoldRequest{
		SessionId: req.SessionID, ReviewId: req.ReviewID}}})
	if err != nil {
		return nil, err
	}
	a := r.GetAwaitHold()
	if a == nil {
		return nil, errBadReply
	}
	return &protocol.AwaitHoldResponse{Outcome: a.Outcome, Reviewer: a.Reviewer, Reason: a.Reason}, nil
}

// recordingHost is the Host of a connection whose gatewayd Host records
// terminal sessions: it is a protocol.Recorder too, as in-process.
type recordingHost struct{ sessionHost }

func (h *recordingHost) Record(ctx context.Context, req protocol.RecordRequest) error {
	_, err := h.s.call(ctx, h.handle, "Record", &pb.Call{Request: &pb.Call_Record{Record: recordToPB(req)}})
	return err
}

var (
	_ protocol.Host            = (*sessionHost)(nil)
	_ protocol.Recorder        = (*recordingHost)(nil)
	_ protocol.Holder          = (*sessionHost)(nil)
	_ pb.ProtocolHandlerServer = (*server)(nil)
	_ plugin.GRPCPlugin        = (*grpcPlugin)(nil)
)
