// Package env is the "env" secret backend: a reference names an environment
// variable of the gatewayd process, as in secret = "env:APP_DB_PASSWORD".
package env

import (
	"context"
	"fmt"
	"os"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Scheme is the reference scheme the backend serves.
const Scheme = "env"

// Backend resolves references to environment variables. The zero value reads
// the process environment and is ready to use.
type Backend struct {
	// lookup replaces os.LookupEnv in tests.
	lookup func(string) (string, bool)
}

// New returns a Backend reading the process environment.
func New() *Backend { return &Backend{} }

// Resolve returns the value of the variable named by req.Reference. A
// variable that is unset or empty is secret.ErrNotFound. Errors name the
// variable, never its value. The answer carries no TTL: the resolver's
// default applies.
func (b *Backend) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("env: resolving variable %q: %w", req.Reference, err)
	}
	name := req.Reference
	if !validName(name) {
		return nil, fmt.Errorf("env: %q is not a variable name (letters, digits and '_', not starting with a digit): %w", name, secret.ErrNotFound)
	}
	lookup := b.lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(name)
	switch {
	case !ok:
		return nil, fmt.Errorf("env: looking up variable %q: not set: %w", name, secret.ErrNotFound)
	case v == "":
		return nil, fmt.Errorf("env: looking up variable %q: empty: %w", name, secret.ErrNotFound)
	}
	return &secret.ResolveResponse{Value: secret.NewValue([]byte(v))}, nil
}

// validName reports whether name is a portable environment variable name.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

var _ secret.Backend = (*Backend)(nil)
