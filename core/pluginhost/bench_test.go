package pluginhost

import (
	"context"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/config"
	envsecret "github.com/gatewayd-access/gatewayd/plugins/secrets/env"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// BenchmarkSecretLookup compares one lookup through an external plugin (a
// gRPC call over a Unix socket with mutual TLS) with the built-in env
// backend. The resolver caches answers, so a session pays this at most once.
func BenchmarkSecretLookup(b *testing.B) {
	b.Setenv("GWBENCH_SECRET", "value")
	run := func(b *testing.B, be secret.Backend, ref string) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := be.Resolve(ctx, secret.ResolveRequest{Reference: ref}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("builtin-env", func(b *testing.B) { run(b, envsecret.New(), "GWBENCH_SECRET") })
	b.Run("plugin", func(b *testing.B) {
		h, err := Start(context.Background(), Options{
			Plugins: []config.Plugin{echoPlugin("echo")},
			Sets:    defaultSets(),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(context.Background())
		run(b, h.SecretBackends()["echo"], "app_db")
	})
}

// BenchmarkStart measures starting a plugin: exec, checksum, handshake,
// mutual TLS and the first connection.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		begin := time.Now()
		h, err := Start(context.Background(), Options{Plugins: []config.Plugin{echoPlugin("echo")}, Sets: defaultSets()})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(begin).Microseconds())/1000, "start-ms")
		_ = h.Close(context.Background())
	}
}
