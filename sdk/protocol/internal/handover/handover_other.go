//go:build !unix

package handover

import (
	"context"
	"net"
)

// Listener is gatewayd's end before the plugin has dialled.
type Listener struct{}

// Listen reports that descriptors cannot be passed on this system.
func Listen() (*Listener, error) { return nil, ErrUnsupported }

// Path is the socket's path.
func (*Listener) Path() string { return "" }

// Token is what the plugin must send first.
func (*Listener) Token() []byte { return nil }

// Close does nothing.
func (*Listener) Close() error { return nil }

// Accept fails.
func (*Listener) Accept(context.Context) (*Sender, error) { return nil, ErrUnsupported }

// Sender is gatewayd's end of an established handover socket.
type Sender struct{}

// Send fails.
func (*Sender) Send(uint64, byte, net.Conn) error { return ErrUnsupported }

// Wait returns at once.
func (*Sender) Wait() error { return ErrUnsupported }

// Close does nothing.
func (*Sender) Close() error { return nil }

// Receiver is the plugin's end.
type Receiver struct{}

// Dial fails.
func Dial(context.Context, string, []byte) (*Receiver, error) { return nil, ErrUnsupported }

// Receive fails.
func (*Receiver) Receive() (uint64, byte, net.Conn, error) { return 0, 0, nil, ErrUnsupported }

// Close does nothing.
func (*Receiver) Close() error { return nil }
