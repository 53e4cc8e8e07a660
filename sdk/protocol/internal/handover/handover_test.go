//go:build unix

package handover

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func listen(t *testing.T) *Listener {
	t.Helper()
	l, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func pair(t *testing.T) (*Sender, *Receiver) {
	t.Helper()
	l := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan *Receiver, 1)
	go func() {
		r, err := Dial(ctx, l.Path(), l.Token())
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	t.Cleanup(func() { _ = s.Close(); _ = r.Close() })
	return s, r
}

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

func TestConnectionCrossesWithItsHandleAndFlags(t *testing.T) {
	s, r := pair(t)
	client, server := tcpPair(t)
	if err := s.Send(42, HostRecords, server); err != nil {
		t.Fatal(err)
	}
	_ = server.Close() // the receiver's duplicate keeps the connection open

	handle, flags, conn, err := r.Receive()
	if err != nil || handle != 42 || flags != HostRecords {
		t.Fatalf("Receive: %d %d %v", handle, flags, err)
	}
	defer conn.Close()
	if conn.RemoteAddr().String() != client.LocalAddr().String() {
		t.Fatalf("received a connection from %s, want %s", conn.RemoteAddr(), client.LocalAddr())
	}
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// Closing the only remaining copy ends the client's connection.
	_ = conn.Close()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("client read after close: %v", err)
	}
}

func TestWrongTokenIsRefused(t *testing.T) {
	l := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		r, err := Dial(ctx, l.Path(), make([]byte, TokenLen))
		if err == nil {
			defer r.Close()
		}
	}()
	if _, err := l.Accept(ctx); !errors.Is(err, ErrBadToken) {
		t.Fatalf("Accept with a wrong token: %v", err)
	}
	// Nobody can dial after the one attempt: the socket is gone.
	if _, err := os.Stat(l.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there: %v", err)
	}
}

func TestAcceptHonoursContext(t *testing.T) {
	l := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := l.Accept(ctx); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("Accept without a plugin: %v after %v", err, time.Since(start))
	}
}

func TestMalformedMessagesAreRefusedAndTheirDescriptorsClosed(t *testing.T) {
	s, r := pair(t)
	_, server := tcpPair(t)
	raw, _ := server.(syscall.Conn).SyscallConn()
	before := openFDs(t)
	for _, tc := range []struct {
		name string
		msg  []byte
		fds  int
	}{
		{"no descriptor", []byte{version, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0},
		{"short", []byte{version, 0, 1}, 1},
		{"wrong version", []byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 1},
		{"two descriptors", []byte{version, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 2},
	} {
		_ = raw.Control(func(fd uintptr) {
			fds := make([]int, tc.fds)
			for i := range fds {
				fds[i] = int(fd)
			}
			var oob []byte
			if tc.fds > 0 {
				oob = syscall.UnixRights(fds...)
			}
			if _, _, err := s.c.WriteMsgUnix(tc.msg, oob, nil); err != nil {
				t.Fatal(err)
			}
		})
		if _, _, conn, err := r.Receive(); !errors.Is(err, ErrMalformed) || conn != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after refusing the messages, %d before", after, before)
	}
	// A good one after the bad ones still works.
	if err := s.Send(7, 0, server); err != nil {
		t.Fatal(err)
	}
	if h, _, conn, err := r.Receive(); err != nil || h != 7 {
		t.Fatalf("after malformed messages: %d %v", h, err)
	} else {
		_ = conn.Close()
	}
}

func TestReceiverSeesSenderGo(t *testing.T) {
	s, r := pair(t)
	_ = s.Close()
	if _, _, _, err := r.Receive(); err == nil || errors.Is(err, ErrMalformed) {
		t.Fatalf("Receive after the sender closed: %v", err)
	}
}

func TestSenderSeesReceiverGo(t *testing.T) {
	s, r := pair(t)
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	_ = r.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Wait returned nil")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the receiver closed")
	}
}

func TestSendRefusesConnWithoutDescriptor(t *testing.T) {
	s, _ := pair(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := s.Send(1, 0, a); !errors.Is(err, ErrNoDescriptor) {
		t.Fatalf("Send(net.Pipe): %v", err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}
