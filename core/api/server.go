package api

import (
	"net/http"
	"time"
)

// Timeouts and limits of the server NewServer returns.
const (
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request; API requests have no
	// bodies.
	ReadTimeout = 30 * time.Second
	// IdleTimeout closes keep-alive connections that stay idle.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
)

// NewServer returns an http.Server for h on addr with the timeouts above.
// It sets no WriteTimeout: an audit export or verify of a large log may
// stream for longer than any fixed bound, and ends when the client goes
// away. Set TLSConfig before serving to serve HTTPS.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
