//go:build unix

package handover

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Listener is gatewayd's end before the plugin has dialled.
type Listener struct {
	ln    *net.UnixListener
	dir   string
	path  string
	token []byte
}

// Listen creates the socket in a new directory of mode 0700 under the
// system's temporary directory.
func Listen() (*Listener, error) {
	dir, err := os.MkdirTemp("", "gatewayd-handover-")
	if err != nil {
		return nil, fmt.Errorf("handover: creating socket directory: %w", err)
	}
	// MkdirTemp already uses 0700; say so for the reader and for umasks.
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("handover: %w", err)
	}
	path := filepath.Join(dir, "conns.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		_ = os.RemoveAll(dir)
		if errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.ESOCKTNOSUPPORT) {
			return nil, ErrUnsupported
		}
		return nil, fmt.Errorf("handover: listening on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	token := make([]byte, TokenLen)
	_, _ = rand.Read(token) // never fails; see crypto/rand
	return &Listener{ln: ln, dir: dir, path: path, token: token}, nil
}

// Path is the socket's path, for the plugin.
func (l *Listener) Path() string { return l.path }

// Token is what the plugin must send first, for the plugin only.
func (l *Listener) Token() []byte { return l.token }

// Close removes the socket and its directory.
func (l *Listener) Close() error {
	err := l.ln.Close()
	if rerr := os.RemoveAll(l.dir); err == nil {
		err = rerr
	}
	return err
}

// Accept waits for the plugin's connection and checks its token. The
// listener is closed afterwards, whatever the outcome: nobody else can dial.
func (l *Listener) Accept(ctx context.Context) (*Sender, error) {
	defer l.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = l.ln.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = l.ln.SetDeadline(time.Now()) })
	defer stop()
	c, err := l.ln.AcceptUnix()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("handover: waiting for the plugin to connect: %w", ctx.Err())
		}
		return nil, fmt.Errorf("handover: waiting for the plugin to connect: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	stopRead := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stopRead()
	buf := make([]byte, TokenLen+1)
	n, err := c.Read(buf)
	if err != nil || n != TokenLen || subtle.ConstantTimeCompare(buf[:n], l.token) != 1 {
		_ = c.Close()
		return nil, ErrBadToken
	}
	_ = c.SetReadDeadline(time.Time{})
	return &Sender{c: c}, nil
}

// Sender is gatewayd's end of an established handover socket.
type Sender struct {
	mu sync.Mutex // one message at a time, each under its own deadline
	c  *net.UnixConn
}

// Send passes conn's descriptor to the plugin, tagged with handle and
// flags. The
// caller still holds its own copy and should close it: the plugin received a
// duplicate, and the client connection lives as long as either is open.
func (s *Sender) Send(handle uint64, flags byte, conn net.Conn) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return ErrNoDescriptor
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDescriptor, err)
	}
	var msg [msgLen]byte
	msg[0], msg[1] = version, flags
	binary.BigEndian.PutUint64(msg[2:], handle)
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.c.SetWriteDeadline(time.Now().Add(sendTimeout))
	var werr error
	err = raw.Control(func(fd uintptr) {
		_, _, werr = s.c.WriteMsgUnix(msg[:], syscall.UnixRights(int(fd)), nil)
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("handover: passing the connection: %w", err)
	}
	return nil
}

// Wait blocks until the plugin's end closes (the plugin exited or gave up
// the socket) and returns why.
func (s *Sender) Wait() error {
	var b [1]byte
	for {
		_, err := s.c.Read(b[:])
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("handover: the plugin closed the connection socket")
			}
			return fmt.Errorf("handover: %w", err)
		}
	}
}

// Close closes gatewayd's end. Connections already passed are the
// plugin's; ones still in flight are closed by the kernel.
func (s *Sender) Close() error { return s.c.Close() }

// Receiver is the plugin's end.
type Receiver struct {
	c   *net.UnixConn
	buf [msgLen + 1]byte
	oob []byte
}

// Dial connects to gatewayd's handover socket and presents the token.
func Dial(ctx context.Context, path string, token []byte) (*Receiver, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		return nil, fmt.Errorf("handover: dialling gatewayd: %w", err)
	}
	uc := c.(*net.UnixConn)
	if _, err := uc.Write(token); err != nil {
		_ = uc.Close()
		return nil, fmt.Errorf("handover: presenting the token: %w", err)
	}
	// Room for more descriptors than expected, so that a message with too
	// many is seen (and its descriptors closed) rather than truncated.
	return &Receiver{c: uc, oob: make([]byte, syscall.CmsgSpace(4*4))}, nil
}

// Receive returns the next connection, its handle and flags. An error
// other than ErrMalformed means the socket is finished (gatewayd closed it
// or exited).
func (r *Receiver) Receive() (uint64, byte, net.Conn, error) {
	n, oobn, mflags, _, err := r.c.ReadMsgUnix(r.buf[:], r.oob)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("handover: %w", err)
	}
	if n == 0 && oobn == 0 {
		return 0, 0, nil, fmt.Errorf("handover: %w", io.EOF)
	}
	fds, perr := parseRights(r.oob[:oobn])
	if mflags&(syscall.MSG_CTRUNC|syscall.MSG_TRUNC) != 0 || perr != nil || len(fds) != 1 || n != msgLen || r.buf[0] != version {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
		return 0, 0, nil, ErrMalformed
	}
	flags, handle := r.buf[1], binary.BigEndian.Uint64(r.buf[2:msgLen])
	f := os.NewFile(uintptr(fds[0]), "client")
	conn, err := net.FileConn(f)
	_ = f.Close() // FileConn holds its own duplicate
	if err != nil {
		return handle, flags, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return handle, flags, conn, nil
}

// Close closes the plugin's end.
func (r *Receiver) Close() error { return r.c.Close() }

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}
