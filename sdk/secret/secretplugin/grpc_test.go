package secretplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// fakeBackend answers from a map; special references misbehave.
type fakeBackend map[string]string

func (f fakeBackend) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	switch req.Reference {
	case "panic":
		panic("boom")
	case "insecure":
		return nil, fmt.Errorf("fake: %s is world-readable: %w", req.Reference, secret.ErrInsecure)
	case "slow":
		<-ctx.Done()
		return nil, fmt.Errorf("fake: waiting: %w", ctx.Err())
	case "broken":
		return nil, errors.New("fake: disk on fire")
	case "nil":
		return nil, nil
	}
	v, ok := f[req.Reference]
	if !ok {
		return nil, fmt.Errorf("fake: no %q: %w", req.Reference, secret.ErrNotFound)
	}
	return &secret.ResolveResponse{Value: secret.NewValue([]byte(v)), TTL: 7 * time.Second}, nil
}

// dispense connects a client shim to a server shim over an in-memory gRPC
// connection, as gatewayd and a plugin process would be.
func dispense(t *testing.T, impl secret.Backend) (secret.Backend, *goplugin.GRPCClient) {
	t.Helper()
	c, _ := goplugin.TestPluginGRPCConn(t, false, pluginSets(impl)[1])
	t.Cleanup(func() { _ = c.Close() })
	raw, err := c.Dispense(plugin.KindSecret)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := raw.(secret.Backend)
	if !ok {
		t.Fatalf("dispensed %T, want a secret.Backend", raw)
	}
	return b, c
}

func TestShimRoundTrip(t *testing.T) {
	b, _ := dispense(t, fakeBackend{"app_db": "s3cr3t-value"})
	ctx := context.Background()

	resp, err := b.Resolve(ctx, secret.ResolveRequest{Reference: "app_db"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Value.Reveal() != "s3cr3t-value" || resp.TTL != 7*time.Second {
		t.Fatalf("got %q ttl %v", resp.Value.Reveal(), resp.TTL)
	}

	tests := []struct {
		ref     string
		timeout time.Duration
		is      error
		text    string
	}{
		{ref: "missing", is: secret.ErrNotFound, text: `fake: no "missing": secret: not found`},
		{ref: "insecure", is: secret.ErrInsecure, text: "world-readable"},
		{ref: "slow", timeout: 50 * time.Millisecond, is: context.DeadlineExceeded},
		{ref: "broken", text: "fake: disk on fire"},
		{ref: "panic", text: "secret backend panicked"},
		{ref: "nil", text: "neither a value nor an error"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			_, err := b.Resolve(ctx, secret.ResolveRequest{Reference: tt.ref})
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
		})
	}

	// The panic did not take the server down.
	if _, err := b.Resolve(ctx, secret.ResolveRequest{Reference: "app_db"}); err != nil {
		t.Fatalf("after a panic: %v", err)
	}
}

func TestShimClosedConnectionIsUnavailable(t *testing.T) {
	b, c := dispense(t, fakeBackend{"k": "v"})
	_ = c.Conn.Close()
	_, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: "k"})
	if !errors.Is(err, plugin.ErrUnavailable) {
		t.Fatalf("error %v, want plugin.ErrUnavailable", err)
	}
}

func TestShimRefusesHugeValues(t *testing.T) {
	b, _ := dispense(t, fakeBackend{"big": strings.Repeat("x", MaxValueSize+1)})
	_, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: "big"})
	if err == nil || strings.Contains(err.Error(), "xxxx") {
		t.Fatalf("error %v", err)
	}
}
