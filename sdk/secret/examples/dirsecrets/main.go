// Command dirsecrets is a complete gatewayd secret plugin: a reference names
// a file in the directory SECRETS_DIR (default /run/secrets, where Docker
// and Kubernetes mount secrets), as in secret = "dir:app_db".
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/secret/secretplugin"
)

type dirBackend struct{ dir string }

func (b dirBackend) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	name := req.Reference
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("dirsecrets: %q is not a file name in %s: %w", name, b.dir, secret.ErrNotFound)
	}
	v, err := os.ReadFile(filepath.Join(b.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dirsecrets: no secret %q in %s: %w", name, b.dir, secret.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("dirsecrets: reading %q: %w", name, err) // never the content
	}
	return &secret.ResolveResponse{Value: secret.NewValue(bytes.TrimRight(v, "\r\n"))}, nil
}

func main() {
	dir := os.Getenv("SECRETS_DIR")
	if dir == "" {
		dir = "/run/secrets"
	}
	secretplugin.Serve(dirBackend{dir: dir})
}
