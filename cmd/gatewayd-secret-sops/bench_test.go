package main

import (
	"context"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/core/pluginhost"
	"github.com/gatewayd-access/gatewayd/plugins/secrets/sops"
	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/secret/secretplugin"
)

// BenchmarkLookup measures one sops lookup (read, age-decrypt, MAC check,
// parse) in-process and through the plugin. gatewayd caches answers for
// [secrets] cache_ttl, so a session pays this at most once.
func BenchmarkLookup(b *testing.B) {
	run := func(b *testing.B, be secret.Backend) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := be.Resolve(ctx, secret.ResolveRequest{Reference: encrypted + "#app_db"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("in-process", func(b *testing.B) {
		b.Setenv("SOPS_AGE_KEY_FILE", ageKey)
		run(b, sops.New())
	})
	b.Run("plugin", func(b *testing.B) {
		h, err := pluginhost.Start(context.Background(), pluginhost.Options{
			Plugins: []config.Plugin{{
				Name: "sops", Kind: plugin.KindSecret, Path: pluginPath, SHA256: pluginSum,
				Env:          map[string]string{"SOPS_AGE_KEY_FILE": ageKey},
				StartTimeout: config.Duration{Duration: 10 * time.Second},
				CallTimeout:  config.Duration{Duration: 10 * time.Second},
			}},
			Sets: map[string]map[int]goplugin.PluginSet{plugin.KindSecret: secretplugin.VersionedPlugins()},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(context.Background())
		run(b, h.SecretBackends()["sops"])
	})
}
