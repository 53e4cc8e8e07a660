package protocolplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/status"

	gwplugin "github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/internal/handover"
	pb "github.com/gatewayd-access/gatewayd/sdk/protocol/internal/protocolv1"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Errors of the host side.
var (
	// ErrPluginShutdown is wrapped by what Serve returns once the plugin
	// process is gone (it exited, crashed or was killed) or the Client was
	// closed: every session it served has ended.
	ErrPluginShutdown = errors.New("protocolplugin: the plugin is not running")
)

const (
	// startTimeout bounds Open when its context has no deadline.
	startTimeout = 30 * time.Second
	// cancelGrace is how long Serve waits, once its context is done, for
	// the plugin to end the session itself (sending the client its
	// protocol's shutdown error) before giving up on it.
	cancelGrace = 15 * time.Second
	// orphanCloseTimeout bounds closing one session of a dead plugin.
	orphanCloseTimeout = 10 * time.Second
)

// Client is gatewayd's end of a running protocol-handler plugin. It
// implements protocol.Handler: Serve hands the connection to the plugin and
// answers the plugin's Host calls for it until the plugin's handler is done.
// A Client serves any number of connections at once. It is safe for
// concurrent use.
type Client struct {
	rpc      pb.ProtocolHandlerClient
	procDone context.Context // go-plugin's: done when the plugin process exits

	sender       *handover.Sender
	stream       pb.ProtocolHandler_CallsClient
	streamCancel context.CancelFunc
	batch        *batcher[*pb.HostFrame]

	mu         sync.Mutex
	sessions   map[uint64]*hostSession
	nextHandle uint64
	inflight   map[uint64]context.CancelFunc // call id -> its cancel

	started bool
	ready   chan struct{} // closed when Start succeeded

	dead     chan struct{}
	deadErr  error
	deadOnce sync.Once
}

// hostSession is one connection the plugin serves.
type hostSession struct {
	host protocol.Host
	// ctx carries the values of Serve's context but not its cancellation:
	// the handler still records the end of a session gatewayd is shutting
	// down, as it does in-process with context.WithoutCancel.
	ctx  context.Context
	done chan string

	mu sync.Mutex
	// open are the sessions the plugin opened (OpenSession) and has not
	// closed: if the plugin dies, Serve closes them for it.
	open map[string]struct{}
	// lost is why the plugin can no longer close sessions, once it died.
	lost string

	// The calls that go into the audit trail run one at a time, in the
	// order the plugin made them: queue, and whether a goroutine runs it.
	qmu     sync.Mutex
	queue   []func()
	running bool
}

// inOrder runs f after every function queued before it, on a goroutine of
// the session's own: calls that do not wait for each other (async ones)
// still reach the audit log in order.
func (hs *hostSession) inOrder(f func()) {
	hs.qmu.Lock()
	hs.queue = append(hs.queue, f)
	if hs.running {
		hs.qmu.Unlock()
		return
	}
	hs.running = true
	hs.qmu.Unlock()
	go func() {
		for {
			hs.qmu.Lock()
			if len(hs.queue) == 0 {
				hs.running = false
				hs.qmu.Unlock()
				return
			}
			next := hs.queue[0]
			hs.queue[0] = nil
			hs.queue = hs.queue[1:]
			hs.qmu.Unlock()
			next()
		}
	}()
}

// opened notes a session the plugin opened. When the plugin is already
// lost, it closes the session at once instead.
func (hs *hostSession) opened(id string) {
	hs.mu.Lock()
	lost := hs.lost
	if lost == "" {
		if hs.open == nil {
			hs.open = map[string]struct{}{}
		}
		hs.open[id] = struct{}{}
	}
	hs.mu.Unlock()
	if lost != "" {
		ctx, cancel := context.WithTimeout(hs.ctx, orphanCloseTimeout)
		_ = hs.host.CloseSession(ctx, protocol.CloseSessionRequest{SessionID: id, Reason: lost})
		cancel()
	}
}

func (hs *hostSession) closed(id string) {
	hs.mu.Lock()
	delete(hs.open, id)
	hs.mu.Unlock()
}

// closeOrphansInOrder is closeOrphans after the audit calls the plugin made
// before it was lost (its last records) and waits for it.
func (hs *hostSession) closeOrphansInOrder(reason string) {
	done := make(chan struct{})
	hs.inOrder(func() {
		hs.closeOrphans(reason)
		close(done)
	})
	<-done
}

// closeOrphans ends, in gatewayd's records, the sessions a plugin opened
// and can no longer close, so that none stays open forever.
func (hs *hostSession) closeOrphans(reason string) {
	hs.mu.Lock()
	hs.lost = reason
	ids := make([]string, 0, len(hs.open))
	for id := range hs.open {
		ids = append(ids, id)
	}
	clear(hs.open)
	hs.mu.Unlock()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(hs.ctx, orphanCloseTimeout)
		_ = hs.host.CloseSession(ctx, protocol.CloseSessionRequest{SessionID: id, Reason: reason})
		cancel()
	}
}

func newClient(procDone context.Context, rpc pb.ProtocolHandlerClient) *Client {
	return &Client{
		rpc:      rpc,
		procDone: procDone,
		sessions: map[uint64]*hostSession{},
		inflight: map[uint64]context.CancelFunc{},
		ready:    make(chan struct{}),
		dead:     make(chan struct{}),
	}
}

// Open makes a running plugin ready to serve: it dispenses the protocol
// kind from the go-plugin client (launched with VersionedPlugins, gRPC and
// AutoMTLS) and calls Start. ctx bounds the start only.
func Open(ctx context.Context, rpc plugin.ClientProtocol, cfg Config) (*Client, error) {
	raw, err := rpc.Dispense(gwplugin.KindProtocol)
	if err != nil {
		return nil, fmt.Errorf("protocolplugin: dispensing the protocol handler: %w", err)
	}
	c, ok := raw.(*Client)
	if !ok {
		return nil, fmt.Errorf("protocolplugin: the plugin client is a %T: launch it with protocolplugin.VersionedPlugins", raw)
	}
	if err := c.Start(ctx, cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// Start makes a Client dispensed from go-plugin ready to serve, once: it
// sends cfg (Configure), sets up the connection handover socket and opens
// the call stream. ctx bounds the start only; without a deadline it is
// bounded by 30 seconds. When Start fails the Client is closed.
func (c *Client) Start(ctx context.Context, cfg Config) error {
	c.mu.Lock()
	started := c.started
	c.started = true
	c.mu.Unlock()
	if started {
		return errors.New("protocolplugin: Start called twice")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	if err := c.start(ctx, cfg); err != nil {
		c.die(err)
		return err
	}
	close(c.ready)
	return nil
}

func (c *Client) start(ctx context.Context, cfg Config) error {
	req, err := cfg.encode()
	if err != nil {
		return err
	}
	defer func() {
		for _, cert := range req.Certificates {
			clear(cert.PrivateKey)
		}
	}()
	ln, err := handover.Listen()
	if err != nil {
		return fmt.Errorf("protocolplugin: %w", err)
	}
	req.HandoverSocket, req.HandoverToken = ln.Path(), ln.Token()
	actx, cancelAccept := context.WithCancel(ctx)
	defer cancelAccept()
	type accepted struct {
		s   *handover.Sender
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		s, err := ln.Accept(actx)
		acc <- accepted{s, err}
	}()
	if _, err := c.rpc.Configure(ctx, req); err != nil {
		cancelAccept()
		if a := <-acc; a.s != nil {
			_ = a.s.Close()
		}
		return fmt.Errorf("protocolplugin: configuring the plugin: %s", status.Convert(err).Message())
	}
	a := <-acc
	if a.err != nil {
		return fmt.Errorf("protocolplugin: %w", a.err)
	}
	c.sender = a.s

	sctx, scancel := context.WithCancel(context.Background())
	stream, err := c.rpc.Calls(sctx)
	if err != nil {
		scancel()
		return fmt.Errorf("protocolplugin: opening the call stream: %s", status.Convert(err).Message())
	}
	c.stream, c.streamCancel = stream, scancel
	c.batch = newBatcher(func(b []*pb.HostFrame) error {
		err := stream.Send(&pb.HostBatch{Frames: b})
		if err != nil {
			go c.die(fmt.Errorf("sending on the call stream: %w", err))
		}
		return err
	}, false)
	go c.receive()
	go func() { c.die(c.sender.Wait()) }()
	go func() {
		select {
		case <-c.procDone.Done():
			c.die(errors.New("the plugin process exited"))
		case <-c.dead:
		}
	}()
	return nil
}

// Done is closed once the plugin can serve no more: its process is gone or
// the Client was closed. Err then says why.
func (c *Client) Done() <-chan struct{} { return c.dead }

// Err is nil while the plugin serves, and then wraps ErrPluginShutdown.
func (c *Client) Err() error {
	select {
	case <-c.dead:
		return c.deadErr
	default:
		return nil
	}
}

// Close stops using the plugin: sessions still served end with
// ErrPluginShutdown, and the plugin, losing its stream, ends them and
// exits. Stopping the process is go-plugin's (plugin.Client.Kill).
func (c *Client) Close() error {
	c.die(errors.New("closed by gatewayd"))
	return nil
}

func (c *Client) die(cause error) {
	c.deadOnce.Do(func() {
		c.deadErr = fmt.Errorf("%w: %v", ErrPluginShutdown, cause)
		close(c.dead)
		if c.streamCancel != nil {
			c.streamCancel()
		}
		if c.sender != nil {
			_ = c.sender.Close()
		}
		if c.batch != nil {
			c.batch.close(c.deadErr)
		}
		c.mu.Lock()
		for _, cancel := range c.inflight {
			cancel()
		}
		c.mu.Unlock()
	})
}

// Serve hands conn to the plugin and answers its Host calls for this
// connection with host until the plugin's handler returns; it returns the
// handler's error. gatewayd's copy of conn is closed as soon as it has been
// handed over: from then on the plugin owns the client connection, and if
// the plugin dies, the kernel closes it. When ctx is done the plugin's
// handler sees its context cancelled and ends the session itself.
func (c *Client) Serve(ctx context.Context, conn net.Conn, host protocol.Host) error {
	select {
	case <-c.dead:
		_ = conn.Close()
		return c.deadErr
	case <-c.ready:
	default:
		_ = conn.Close()
		return errors.New("protocolplugin: Serve before Start")
	}
	hs := &hostSession{host: host, ctx: context.WithoutCancel(ctx), done: make(chan string, 1)}
	c.mu.Lock()
	c.nextHandle++
	handle := c.nextHandle
	c.sessions[handle] = hs
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.sessions, handle)
		c.mu.Unlock()
	}()

	var flags byte
	if _, ok := host.(protocol.Recorder); ok {
		flags |= handover.HostRecords
	}
	err := c.sender.Send(handle, flags, conn)
	_ = conn.Close()
	if err != nil {
		if c.Err() != nil {
			return c.deadErr
		}
		return fmt.Errorf("protocolplugin: %w", err)
	}

	select {
	case msg := <-hs.done:
		return sessionErr(msg)
	case <-c.dead:
		return c.lost(hs)
	case <-ctx.Done():
	}
	c.enqueue(&pb.HostFrame{Frame: &pb.HostFrame_CancelSession{CancelSession: handle}})
	timer := time.NewTimer(cancelGrace)
	defer timer.Stop()
	select {
	case msg := <-hs.done:
		return sessionErr(msg)
	case <-c.dead:
		return c.lost(hs)
	case <-timer.C:
		err := fmt.Errorf("protocolplugin: the plugin did not end the session within %v of its cancellation", cancelGrace)
		hs.closeOrphansInOrder(err.Error())
		return err
	}
}

// lost ends a session whose plugin died under it.
func (c *Client) lost(hs *hostSession) error {
	hs.closeOrphansInOrder(c.deadErr.Error())
	return c.deadErr
}

func sessionErr(msg string) error {
	if msg == "" {
		return nil
	}
	return errors.New(msg)
}

// enqueue queues f for the plugin, to go at once with whatever else waits.
// It fails only once the plugin is gone, and then nothing needs sending.
func (c *Client) enqueue(f *pb.HostFrame) {
	_ = c.batch.push(f, false)
}

// receive reads the plugin's frames until the stream ends.
func (c *Client) receive() {
	for {
		msg, err := c.stream.Recv()
		if err != nil {
			c.die(fmt.Errorf("the call stream ended: %s", status.Convert(err).Message()))
			return
		}
		for _, f := range msg.Frames {
			switch fr := f.Frame.(type) {
			case *pb.PluginFrame_Call:
				c.dispatch(fr.Call)
			case *pb.PluginFrame_CancelCall:
				c.mu.Lock()
				cancel := c.inflight[fr.CancelCall]
				c.mu.Unlock()
				if cancel != nil {
					cancel()
				}
			case *pb.PluginFrame_Done:
				c.mu.Lock()
				hs := c.sessions[fr.Done.Session]
				c.mu.Unlock()
				if hs != nil {
					select {
					case hs.done <- fr.Done.Error:
					default:
					}
				}
			}
		}
	}
}

// dispatch answers one call on its own goroutine, so that a slow call
// (an audit write, a policy module) holds up nothing but itself.
func (c *Client) dispatch(call *pb.Call) {
	c.mu.Lock()
	hs := c.sessions[call.Session]
	if hs == nil {
		c.mu.Unlock()
		if !call.Async {
			c.enqueue(&pb.HostFrame{Frame: &pb.HostFrame_Reply{Reply: &pb.Reply{Id: call.Id, Error: &pb.Error{
				Kind: pb.Error_KIND_UNAVAILABLE, Message: "protocolplugin: call for a connection gatewayd is not serving",
			}}}})
		}
		return
	}
	timeout := time.Duration(call.TimeoutNanos)
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	ctx, cancel := context.WithTimeout(hs.ctx, timeout)
	c.inflight[call.Id] = cancel
	c.mu.Unlock()
	run := func() {
		reply := answer(ctx, hs, call)
		c.mu.Lock()
		delete(c.inflight, call.Id)
		c.mu.Unlock()
		cancel()
		switch {
		case !call.Async:
			c.enqueue(&pb.HostFrame{Frame: &pb.HostFrame_Reply{Reply: reply}})
		case reply.Error != nil:
			c.enqueue(&pb.HostFrame{Frame: &pb.HostFrame_AsyncError{AsyncError: &pb.AsyncError{Session: call.Session, Error: reply.Error}}})
		}
	}
	switch call.Request.(type) {
	case *pb.Call_RecordRequests, *pb.Call_RecordEvent, *pb.Call_Record, *pb.Call_CloseSession:
		hs.inOrder(run)
	default:
		go run()
	}
}

// answer makes one Host call. A panic in the host becomes an error reply.
func answer(ctx context.Context, hs *hostSession, call *pb.Call) (reply *pb.Reply) {
	host := hs.host
	reply = &pb.Reply{Id: call.Id}
	defer func() {
		if r := recover(); r != nil {
			reply = &pb.Reply{Id: call.Id, Error: &pb.Error{
				Kind:    pb.Error_KIND_UNAVAILABLE,
				Message: fmt.Sprintf("%v: gatewayd failed answering the plugin: %v", protocol.ErrUnavailable, r),
			}}
		}
	}()
	var err error
	switch r := call.Request.(type) {
	case *pb.Call_Authenticate:
		var resp *protocol.AuthenticateResponse
		if resp, err = host.Authenticate(ctx, authenticateFromPB(r.Authenticate)); err == nil {
			reply.Response = &pb.Reply_Authenticate{Authenticate: &pb.AuthenticateResponse{Identity: identityToPB(resp.Identity)}}
		}
	case *pb.Call_OpenSession:
		var resp *protocol.OpenSessionResponse
		if resp, err = host.OpenSession(ctx, openSessionFromPB(r.OpenSession)); err == nil {
			hs.opened(resp.SessionID)
			reply.Response = &pb.Reply_OpenSession{OpenSession: openSessionRespToPB(resp)}
		}
	case *pb.Call_Admit:
		var resp *protocol.AdmitResponse
		if resp, err = host.Admit(ctx, admitFromPB(r.Admit)); err == nil {
			reply.Response = &pb.Reply_Admit{Admit: admitRespToPB(resp)}
		}
	case *pb.Call_Mask:
		var batch abi.Batch
		if err = abi.DecodeBatch(r.Mask.Batch, &batch); err != nil {
			err = fmt.Errorf("protocolplugin: the plugin sent a malformed batch: %w", err)
			break
		}
		var resp *protocol.MaskResponse
		if resp, err = host.Mask(ctx, protocol.MaskRequest{SessionID: r.Mask.SessionId, Batch: &batch}); err == nil {
			reply.Response = &pb.Reply_Mask{Mask: &pb.MaskResponse{Changes: abi.AppendChanges(nil, &abi.Changes{List: resp.Changes})}}
		}
	case *pb.Call_RecordRequests:
		err = host.RecordRequests(ctx, recordsFromPB(r.RecordRequests))
	case *pb.Call_RecordEvent:
		err = host.RecordEvent(ctx, eventFromPB(r.RecordEvent))
	case *pb.Call_CloseSession:
		hs.closed(r.CloseSession.SessionId)
		err = host.CloseSession(ctx, closeFromPB(r.CloseSession))
	case *pb.Call_Record:
		rec, ok := host.(protocol.Recorder)
		if !ok {
			err = fmt.Errorf("%w: protocolplugin: gatewayd does not record this connection", protocol.ErrUnavailable)
			break
		}
		err = rec.Record(ctx, recordFromPB(r.Record))
	case *pb.Call_Hold:
		hd, ok := host.(protocol.Holder)
		if !ok {
			err = protocol.ErrHoldUnavailable
			break
		}
		var resp *protocol.HoldResponse
		if resp, err = hd.Hold(ctx, holdFromPB(r.Hold)); err == nil {
			reply.Response = &pb.Reply_Hold{Hold: holdRespToPB(resp)}
		}
	case *pb.Call_AwaitHold:
		hd, ok := host.(protocol.Holder)
		if !ok {
			err = protocol.ErrHoldUnavailable
			break
		}
		var resp *protocol.AwaitHoldResponse
		if resp, err = hd.AwaitHold(ctx, protocol.AwaitHoldRequest{SessionID: r.AwaitHold.SessionId, ReviewID: r.AwaitHold.ReviewId}); err == nil {
			reply.Response = &pb.Reply_AwaitHold{AwaitHold: &pb.AwaitHoldResponse{Outcome: resp.Outcome, Reviewer: resp.Reviewer, Reason: resp.Reason}}
		}
	default:
		err = fmt.Errorf("%w: protocolplugin: unknown call %T from the plugin", protocol.ErrUnavailable, r)
	}
	if err != nil {
		return &pb.Reply{Id: call.Id, Error: errorToPB(err)}
	}
	return reply
}

var _ protocol.Handler = (*Client)(nil)
