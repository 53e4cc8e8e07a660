package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/secret/secretplugin"
)

// TestOutOfProcess builds the plugin and talks to it the way gatewayd does:
// go-plugin, the gatewayd handshake, gRPC only, AutoMTLS.
func TestOutOfProcess(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dirsecrets")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	secrets := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "app_db"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Env = []string{"SECRETS_DIR=" + secrets}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: secretplugin.VersionedPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(plugin.KindSecret)
	if err != nil {
		t.Fatal(err)
	}
	b := raw.(secret.Backend)

	resp, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: "app_db"})
	if err != nil || resp.Value.Reveal() != "s3cret" {
		t.Fatalf("Resolve = %v, %v", resp, err)
	}
	for _, ref := range []string{"nope", "../secrets/app_db", "/etc/passwd"} {
		if _, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: ref}); !errors.Is(err, secret.ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want secret.ErrNotFound", ref, err)
		}
	}
}
