// Package file is the "file" secret backend: a reference is the absolute path
// of a file only gatewayd's user may read, as in "file:/etc/gatewayd/pg.pass".
//
// The file is read on every lookup (the resolver caches the answer). Trailing
// newlines are trimmed, so `echo secret > file` works. A file that group or
// other may read or write (mode & 0o077 != 0) is refused with
// secret.ErrInsecure: chmod 600 it. Symbolic links are followed, and the mode
// checked is that of the final target, taken from the opened file itself so
// that the file checked is the file read; the link's own mode means nothing
// on Linux. The directories on the way are not checked.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Scheme is the reference scheme the backend serves.
const Scheme = "file"

// MaxSize bounds the size of a secret file.
const MaxSize = 64 << 10

// Backend resolves references to files. The zero value is ready to use.
type Backend struct{}

// New returns a Backend.
func New() *Backend { return &Backend{} }

// Resolve reads the file named by req.Reference. A missing or empty file is
// secret.ErrNotFound; a file readable or writable by group or other is
// secret.ErrInsecure. Errors name the path, never the content. The answer
// carries no TTL: the resolver's default applies.
func (b *Backend) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	path := req.Reference
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file: reading %s: %w", path, err)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("file: %q is not an absolute path: %w", path, secret.ErrNotFound)
	}
	// O_NONBLOCK: opening a FIFO put in the file's place must not hang; the
	// mode check below refuses anything but a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file: opening %s: %w", path, secret.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("file: opening secret: %w", err)
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("file: checking secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("file: %s is not a regular file (%v): %w", path, fi.Mode().Type(), secret.ErrNotFound)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("file: %s has mode %04o, want no access for group and other (chmod 600): %w", path, perm, secret.ErrInsecure)
	}
	if fi.Size() > MaxSize {
		return nil, fmt.Errorf("file: %s is larger than %d bytes", path, MaxSize)
	}

	buf := make([]byte, 0, fi.Size()+1)
	buf, err = readAll(f, buf)
	defer clear(buf[:cap(buf)])
	if err != nil {
		return nil, fmt.Errorf("file: reading %s: %w", path, err)
	}
	if len(buf) > MaxSize {
		return nil, fmt.Errorf("file: %s is larger than %d bytes", path, MaxSize)
	}
	v := bytes.TrimRight(buf, "\r\n")
	if len(v) == 0 {
		return nil, fmt.Errorf("file: %s is empty: %w", path, secret.ErrNotFound)
	}
	return &secret.ResolveResponse{Value: secret.NewValue(v)}, nil
}

// readAll reads r into buf, at most MaxSize+1 bytes, growing buf in place so
// that every copy of the secret can be cleared.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	lr := io.LimitReader(r, MaxSize+1)
	for {
		if len(buf) == cap(buf) {
			bigger := make([]byte, len(buf), 2*cap(buf)+512)
			copy(bigger, buf)
			clear(buf)
			buf = bigger
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

var _ secret.Backend = (*Backend)(nil)
