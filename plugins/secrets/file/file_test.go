package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

const value = "s3cret-Value-42"

// write creates a file holding content with the given mode (chmod after
// creation, so the umask does not interfere).
func write(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	private := write(t, dir, "private", value+"\n", 0o600)
	readOnly := write(t, dir, "readonly", value, 0o400)
	crlf := write(t, dir, "crlf", value+"\r\n\n", 0o600)
	inner := write(t, dir, "inner", "  spaced "+value+"  \n", 0o600)
	world := write(t, dir, "world", value, 0o644)
	group := write(t, dir, "group", value, 0o640)
	otherWrite := write(t, dir, "otherwrite", value, 0o602)
	empty := write(t, dir, "empty", "\n", 0o600)
	big := write(t, dir, "big", strings.Repeat("x", MaxSize+1), 0o600)
	maxed := write(t, dir, "max", strings.Repeat("y", MaxSize), 0o600)

	linkOK := filepath.Join(dir, "link-ok")
	if err := os.Symlink(private, linkOK); err != nil {
		t.Fatal(err)
	}
	linkBad := filepath.Join(dir, "link-bad")
	if err := os.Symlink(world, linkBad); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		ref     string
		want    string
		wantErr error  // nil: any error when errHas is set
		errHas  string // substring of the error
	}{
		{"private 0600", private, value, nil, ""},
		{"read-only 0400", readOnly, value, nil, ""},
		{"trailing CR LF trimmed", crlf, value, nil, ""},
		{"inner spaces kept", inner, "  spaced " + value + "  ", nil, ""},
		{"exactly MaxSize", maxed, strings.Repeat("y", MaxSize), nil, ""},
		{"symlink to 0600", linkOK, value, nil, ""},
		{"world readable 0644", world, "", secret.ErrInsecure, world + " has mode 0644"},
		{"group readable 0640", group, "", secret.ErrInsecure, group + " has mode 0640"},
		{"other writable 0602", otherWrite, "", secret.ErrInsecure, "mode 0602"},
		{"symlink to 0644", linkBad, "", secret.ErrInsecure, linkBad + " has mode 0644"},
		{"missing", filepath.Join(dir, "nope"), "", secret.ErrNotFound, filepath.Join(dir, "nope")},
		{"empty", empty, "", secret.ErrNotFound, "is empty"},
		{"too large", big, "", nil, "larger than 65536 bytes"},
		{"directory", dir, "", secret.ErrNotFound, "not a regular file"},
		{"fifo", fifo, "", secret.ErrNotFound, "not a regular file"},
		{"relative", "secrets/pg.pass", "", secret.ErrNotFound, "not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := New().Resolve(context.Background(), secret.ResolveRequest{Reference: tt.ref})
			if tt.wantErr != nil || tt.errHas != "" {
				if err == nil {
					t.Fatalf("no error, want %v", tt.wantErr)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %q, want it to contain %q", err, tt.errHas)
				}
				if strings.Contains(err.Error(), value) {
					t.Errorf("error contains the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Value.Reveal(); got != tt.want {
				t.Errorf("value %q, want %q", got, tt.want)
			}
		})
	}
}

// TestModeChange checks that a file fixed with chmod 600 is accepted at the
// next lookup: nothing about the refusal is remembered.
func TestModeChange(t *testing.T) {
	p := write(t, t.TempDir(), "pg.pass", value, 0o644)
	b := New()
	if _, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: p}); !errors.Is(err, secret.ErrInsecure) {
		t.Fatalf("0644: err = %v, want ErrInsecure", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: p})
	if err != nil || resp.Value.Reveal() != value {
		t.Fatalf("0600: %v, %v", resp, err)
	}
}
