package secretplugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	pb "github.com/gatewayd-access/gatewayd/sdk/secret/internal/secretsv1"
)

// MaxValueSize bounds a secret value crossing the plugin boundary.
const MaxValueSize = 1 << 20

// grpcPluginV1 is go-plugin's view of protocol version 1: it registers the
// server shim in the plugin process and makes the client shim in gatewayd.
type grpcPluginV1 struct {
	goplugin.NetRPCUnsupportedPlugin
	impl secret.Backend // nil on the client side
}

func (p *grpcPluginV1) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.impl == nil {
		return errors.New("secretplugin: no backend to serve")
	}
	pb.RegisterSecretBackendServer(s, &server{impl: p.impl})
	return nil
}

func (p *grpcPluginV1) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &client{rpc: pb.NewSecretBackendClient(c)}, nil
}

// server adapts a secret.Backend to the gRPC service, in the plugin process.
type server struct {
	pb.UnimplementedSecretBackendServer
	impl secret.Backend
}

func (s *server) Resolve(ctx context.Context, req *pb.ResolveRequest) (_ *pb.ResolveResponse, err error) {
	// A panicking backend answers an error rather than taking the plugin
	// process, and every lookup in flight, down with it.
	defer func() {
		if p := recover(); p != nil {
			err = status.Error(codes.Internal, "secret backend panicked")
		}
	}()
	resp, err := s.impl.Resolve(ctx, secret.ResolveRequest{Reference: req.GetReference()})
	if err != nil {
		return nil, toStatus(err)
	}
	if resp == nil {
		return nil, status.Error(codes.Internal, "secret backend returned neither a value nor an error")
	}
	return &pb.ResolveResponse{Value: []byte(resp.Value.Reveal()), TtlNs: int64(resp.TTL)}, nil
}

// toStatus turns a backend's error into a gRPC status that keeps its text
// and its sentinel.
func toStatus(err error) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, secret.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, secret.ErrInsecure):
		code = codes.PermissionDenied
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

// client adapts the gRPC service to a secret.Backend, in gatewayd.
type client struct {
	rpc pb.SecretBackendClient
}

func (c *client) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	resp, err := c.rpc.Resolve(ctx, &pb.ResolveRequest{Reference: req.Reference})
	if err != nil {
		return nil, fromStatus(ctx, err)
	}
	v := resp.GetValue()
	defer clear(v)
	if len(v) > MaxValueSize {
		return nil, fmt.Errorf("secretplugin: the plugin answered a value of %d bytes, more than %d", len(v), MaxValueSize)
	}
	return &secret.ResolveResponse{Value: secret.NewValue(v), TTL: time.Duration(resp.GetTtlNs())}, nil
}

// remoteError is a backend's error as the plugin reported it: its text,
// and the sentinel it wrapped.
type remoteError struct {
	msg string
	is  error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.is }

// fromStatus turns a failed call into an error that wraps the sentinel the
// backend used (secret.ErrNotFound, secret.ErrInsecure), ctx's error when
// the caller gave up, or plugin.ErrUnavailable when the plugin is gone.
func fromStatus(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("secretplugin: calling the plugin: %w", cerr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("secretplugin: calling the plugin: %w", err)
	}
	switch st.Code() {
	case codes.NotFound:
		return &remoteError{msg: st.Message(), is: secret.ErrNotFound}
	case codes.PermissionDenied:
		return &remoteError{msg: st.Message(), is: secret.ErrInsecure}
	case codes.DeadlineExceeded:
		return &remoteError{msg: st.Message(), is: context.DeadlineExceeded}
	case codes.Unavailable, codes.Canceled:
		// Canceled with a live ctx: the connection was closed under the call.
		return fmt.Errorf("%w: %s", plugin.ErrUnavailable, st.Message())
	}
	return &remoteError{msg: st.Message()}
}

var (
	_ goplugin.GRPCPlugin    = (*grpcPluginV1)(nil)
	_ pb.SecretBackendServer = (*server)(nil)
	_ secret.Backend         = (*client)(nil)
)
